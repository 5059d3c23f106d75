using Google.Protobuf;
using MobileNetSharp.Graph;
using MobileNetSharp.Onnx;
using MobileNetSharp.Onnx.Proto;

namespace MobileNetSharp.Tests.Onnx;

/// <summary>Weights in side files next to the .onnx: read when inside the model's folder, refused when pointing out of it.</summary>
public sealed class ExternalDataTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("mnet-extdata-").FullName;
    private string ModelDir => Path.Combine(_root, "model");

    public ExternalDataTests() => Directory.CreateDirectory(ModelDir);

    public void Dispose() => Directory.Delete(_root, recursive: true);

    /// <summary>The conv model with W moved to <paramref name="location"/>, its bytes written to <paramref name="writeTo"/> at an offset.</summary>
    private string Model(string location, string? writeTo, int offset = 16, long? length = null)
    {
        var m = HostileInputTests.ConvModel();
        var w = m.Graph.Initializer.First(t => t.Name == "W");
        var raw = w.RawData.ToByteArray();
        if (writeTo is not null)
        {
            Directory.CreateDirectory(Path.GetDirectoryName(writeTo)!);
            File.WriteAllBytes(writeTo, new byte[offset].Concat(raw).ToArray());
        }
        w.RawData = ByteString.Empty;
        w.DataLocation = TensorProto.Types.DataLocation.External;
        w.ExternalData.Add(new StringStringEntryProto { Key = "location", Value = location });
        w.ExternalData.Add(new StringStringEntryProto { Key = "offset", Value = offset.ToString() });
        w.ExternalData.Add(new StringStringEntryProto { Key = "length", Value = (length ?? raw.Length).ToString() });
        string path = Path.Combine(ModelDir, "model.onnx");
        File.WriteAllBytes(path, m.ToBytes());
        return path;
    }

    private float[] Weights() => HostileInputTests.ConvModel().Graph.Initializer.First(t => t.Name == "W").RawData.Span.ToArray()
        .Chunk(4).Select(b => BitConverter.ToSingle(b)).ToArray();

    [Fact]
    public void ReadsSideFilesInTheModelFolder()
    {
        var g = OnnxImporter.Load(Model("weights/w.bin", Path.Combine(ModelDir, "weights", "w.bin")));
        Assert.Equal(Weights(), g.Nodes[0].Input(1).Constant!.Floats);
    }

    [Fact]
    public void BytesNeedAnExplicitFolder()
    {
        string path = Model("w.bin", Path.Combine(ModelDir, "w.bin"));
        var bytes = File.ReadAllBytes(path);
        Assert.Contains("external file", Assert.ThrowsAny<ModelFormatException>(() => OnnxImporter.Load(bytes)).Message);
        var g = OnnxImporter.Load(bytes, new OnnxImportOptions { ExternalDataDirectory = ModelDir });
        Assert.Equal(Weights(), g.Nodes[0].Input(1).Constant!.Floats);
    }

    [Theory]
    [InlineData("../secret.bin")]
    [InlineData("weights/../../secret.bin")]
    [InlineData("/etc/passwd")]
    public void PathsLeavingTheFolderAreRefused(string location)
    {
        var e = Assert.ThrowsAny<ModelFormatException>(() => OnnxImporter.Load(Model(location, Path.Combine(_root, "secret.bin"))));
        Assert.Contains("inside the model's folder", e.Message);
    }

    [Fact]
    public void SymlinksLeavingTheFolderAreRefused()
    {
        string outside = Path.Combine(_root, "outside");
        Model("x", Path.Combine(outside, "w.bin"));
        File.CreateSymbolicLink(Path.Combine(ModelDir, "link.bin"), Path.Combine(outside, "w.bin"));
        Directory.CreateSymbolicLink(Path.Combine(ModelDir, "linkdir"), outside);
        Assert.Contains("leads outside", Assert.ThrowsAny<ModelFormatException>(() => OnnxImporter.Load(Model("link.bin", null))).Message);
        Assert.Contains("leads outside", Assert.ThrowsAny<ModelFormatException>(() => OnnxImporter.Load(Model("linkdir/w.bin", null))).Message);
        File.CreateSymbolicLink(Path.Combine(ModelDir, "relative.bin"), Path.Combine("..", "outside", "w.bin"));
        Assert.Contains("leads outside", Assert.ThrowsAny<ModelFormatException>(() => OnnxImporter.Load(Model("relative.bin", null))).Message);

        // A link that stays inside the folder is fine.
        File.CreateSymbolicLink(Path.Combine(ModelDir, "inside.bin"), Path.Combine(ModelDir, "real.bin"));
        var g = OnnxImporter.Load(Model("inside.bin", Path.Combine(ModelDir, "real.bin")));
        Assert.Equal(Weights(), g.Nodes[0].Input(1).Constant!.Floats);
    }

    [Fact]
    public void ShortOrMissingSideFilesAreRefused()
    {
        string path = Model("w.bin", Path.Combine(ModelDir, "w.bin"));
        File.WriteAllBytes(Path.Combine(ModelDir, "w.bin"), new byte[40]);
        Assert.Contains("has 40 bytes", Assert.ThrowsAny<ModelFormatException>(() => OnnxImporter.Load(path)).Message);
        File.Delete(Path.Combine(ModelDir, "w.bin"));
        Assert.Contains("cannot", Assert.ThrowsAny<ModelFormatException>(() => OnnxImporter.Load(path)).Message);
        Assert.Contains("length 12", Assert.ThrowsAny<ModelFormatException>(() => OnnxImporter.Load(Model("w.bin", Path.Combine(ModelDir, "w.bin"), length: 12))).Message);
    }
}
