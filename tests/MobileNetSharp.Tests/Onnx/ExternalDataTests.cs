using System.Runtime.InteropServices;
using Google.Protobuf;
using MobileNetSharp.Graph;
using MobileNetSharp.Onnx;
using MobileNetSharp.Onnx.Proto;

namespace MobileNetSharp.Tests.Onnx;

/// <summary>Weights in side files next to the .onnx: read when inside the model's folder, refused when pointing out of it.</summary>
public sealed partial class ExternalDataTests : IDisposable
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

    /// <summary>x[n] + w0 + w1 + ...: one external float tensor of n elements per (offset) entry, all in <paramref name="file"/>.</summary>
    private string SharedFileModel(string file, long[] offsets, int n)
    {
        var m = new OnnxModelBuilder().Input("x", n);
        string acc = "x";
        for (int i = 0; i < offsets.Length; i++)
        {
            var t = new TensorProto { Name = $"w{i}", DataType = 1, Dims = { n }, DataLocation = TensorProto.Types.DataLocation.External };
            t.ExternalData.Add(new StringStringEntryProto { Key = "location", Value = file });
            t.ExternalData.Add(new StringStringEntryProto { Key = "offset", Value = offsets[i].ToString() });
            t.ExternalData.Add(new StringStringEntryProto { Key = "length", Value = (4L * n).ToString() });
            m.Initializer(t).Node("Add", [acc, $"w{i}"], [$"a{i}"]);
            acc = $"a{i}";
        }
        string path = Path.Combine(ModelDir, "shared.onnx");
        File.WriteAllBytes(path, m.Node("Relu", [acc], ["y"]).Output("y").ToBytes());
        return path;
    }

    [Fact]
    public void TensorsNamingTheSameBytesShareOneArray()
    {
        const int n = 1 << 16;
        File.WriteAllBytes(Path.Combine(ModelDir, "w.bin"), new byte[4 * n]);
        var g = OnnxImporter.Load(SharedFileModel("w.bin", new long[40], n));
        var arrays = g.Nodes.Where(node => node.Inputs.Length == 2).Select(node => node.Inputs[1]!.Constant!.Data).ToArray();
        Assert.Equal(40, arrays.Length);
        Assert.All(arrays, a => Assert.Same(arrays[0], a));
        // Spelled differently, the same file is still the same bytes.
        File.WriteAllBytes(Path.Combine(ModelDir, "v.bin"), new byte[4 * n]);
        var spelled = OnnxImporter.Load(SharedFileModel("./v.bin", [0], n)).Nodes[0].Inputs[1]!.Constant!.Data;
        Assert.Equal(4 * n, Buffer.ByteLength(spelled));
    }

    [Fact]
    public void ExternalBytesAreBoundedForTheWholeModel()
    {
        const int n = 1024;
        File.WriteAllBytes(Path.Combine(ModelDir, "w.bin"), new byte[4 * n + 8]);
        // Overlapping ranges would let a small file fill memory many times over.
        var e = Assert.ThrowsAny<ModelFormatException>(() => OnnxImporter.Load(SharedFileModel("w.bin", [0, 4, 8], n)));
        Assert.Contains("'w1'", e.Message);
        Assert.Contains("must not overlap", e.Message);
        // Disjoint tensors within the total limit load; beyond it they are refused.
        File.WriteAllBytes(Path.Combine(ModelDir, "w.bin"), new byte[3 * 4 * n]);
        string path = SharedFileModel("w.bin", [0, 4 * n, 8 * n], n);
        Assert.Equal(3, OnnxImporter.Load(path).Nodes.Count - 1);
        e = Assert.ThrowsAny<ModelFormatException>(() => OnnxImporter.Load(path, new OnnxImportOptions { MaxExternalBytes = 2 * 4 * n }));
        Assert.Contains("'w2'", e.Message);
        Assert.Contains("MaxExternalBytes", e.Message);
    }

    [LibraryImport("libc", EntryPoint = "mkfifo", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int MkFifo(string path, uint mode);

    [Fact]
    public void NonRegularFilesAreNotOpened()
    {
        Assert.Contains("it is a directory", Assert.ThrowsAny<ModelFormatException>(() =>
        {
            Directory.CreateDirectory(Path.Combine(ModelDir, "dir.bin"));
            return OnnxImporter.Load(Model("dir.bin", null));
        }).Message);
        if (OperatingSystem.IsWindows()) return;
        // Opening a FIFO blocks until someone writes to it; it must be refused before the open.
        Assert.Equal(0, MkFifo(Path.Combine(ModelDir, "fifo.bin"), Convert.ToUInt32("600", 8)));
        Assert.Contains("has 0 bytes", Assert.ThrowsAny<ModelFormatException>(() => OnnxImporter.Load(Model("fifo.bin", null))).Message);
    }

    [Fact]
    public void SymlinkChainsResolveInBoundedWork()
    {
        // a_k -> a_{k+1}/a_{k+1}, a_N -> ".": every a_k is the folder itself, but resolving a_0 naively follows
        // 2^N links. One hop counter per resolution and a cache of resolved links keep it to N resolutions.
        const int depth = 12;
        File.CreateSymbolicLink(Path.Combine(ModelDir, $"a_{depth}"), ".");
        for (int k = depth - 1; k >= 0; k--)
            File.CreateSymbolicLink(Path.Combine(ModelDir, $"a_{k}"), Path.Combine($"a_{k + 1}", $"a_{k + 1}"));
        string path = Model("a_0/w.bin", Path.Combine(ModelDir, "w.bin"));
        try { Assert.Equal(Weights(), OnnxImporter.Load(path).Nodes[0].Input(1).Constant!.Floats); }
        catch (ModelFormatException e) { Assert.Contains("symbolic links", e.Message); }

        // A loop, and a straight chain longer than the hop limit, are refused with the limit named.
        File.CreateSymbolicLink(Path.Combine(ModelDir, "loop_a"), "loop_b");
        File.CreateSymbolicLink(Path.Combine(ModelDir, "loop_b"), "loop_a");
        Assert.Contains("Too many symbolic links", Assert.ThrowsAny<ModelFormatException>(() => OnnxImporter.Load(Model("loop_a", null))).Message);
        int hops = MobileNetSharp.Onnx.Import.ExternalDataSource.MaxLinkHops + 5;
        File.CreateSymbolicLink(Path.Combine(ModelDir, $"c_{hops}"), "w.bin");
        for (int k = hops - 1; k >= 0; k--) File.CreateSymbolicLink(Path.Combine(ModelDir, $"c_{k}"), $"c_{k + 1}");
        var refused = Assert.ThrowsAny<ModelFormatException>(() => OnnxImporter.Load(Model("c_0", Path.Combine(ModelDir, "w.bin"))));
        Assert.Contains($"Too many symbolic links (more than {MobileNetSharp.Onnx.Import.ExternalDataSource.MaxLinkHops})", refused.Message);
        // Within the limit, a chain is followed.
        Assert.Equal(Weights(), OnnxImporter.Load(Model($"c_{hops - 10}", Path.Combine(ModelDir, "w.bin"))).Nodes[0].Input(1).Constant!.Floats);
    }
}
