using Google.FlatBuffers;

namespace MobileNetSharp.Tests.TfLite;

/// <summary>
/// Writes small TFLite flatbuffers for tests, independently of the importer's reader: tensors (constants get a
/// buffer each), operator codes, operators with builtin options written by a callback, one subgraph.
/// </summary>
public sealed class TfLiteModelBuilder
{
    public const byte Float32 = 0, Float16 = 1, Int32 = 2, UInt8 = 3, Int8 = 9;

    private readonly List<(string Name, int[] Shape, byte Type, byte[]? Data)> _tensors = [];
    private readonly List<(int Code, string? Custom, CodeStyle Style)> _codes = [];
    private readonly List<(int Code, int[] Inputs, int[] Outputs, byte OptionsType, Func<FlatBufferBuilder, int>? Options, byte[]? Custom)> _ops = [];

    /// <summary>How an operator code is written: both fields (current converters), only the deprecated byte (old ones), or only the int.</summary>
    public enum CodeStyle { Both, DeprecatedOnly, NewOnly }

    public CodeStyle Codes { get; set; } = CodeStyle.Both;
    /// <summary>Written as the file's schema version (3 is the only valid one).</summary>
    public uint Version { get; set; } = 3;
    /// <summary>Buffer indices written instead of the right ones, by tensor (hostile-input tests).</summary>
    public Dictionary<int, uint> BufferIndex { get; } = [];

    /// <summary>QuantizationParameters by tensor: scales, zero points (null: the field left out) and quantized_dimension.</summary>
    public Dictionary<int, (float[] Scales, long[]? ZeroPoints, int Dimension)> Quantization { get; } = [];

    /// <summary>An 8-bit (or int32) tensor with its quantization; <paramref name="codes"/> null for a computed tensor.</summary>
    public int QuantizedTensor(string name, int[] shape, byte type, float[] scales, long[] zeroPoints, int dimension = 0, Array? codes = null)
    {
        byte[]? data = codes switch
        {
            null => null,
            sbyte[] i8 => System.Runtime.InteropServices.MemoryMarshal.AsBytes(i8.AsSpan()).ToArray(),
            byte[] u8 => u8,
            int[] i32 => System.Runtime.InteropServices.MemoryMarshal.AsBytes(i32.AsSpan()).ToArray(),
            _ => throw new ArgumentException("codes are sbyte[], byte[] or int[]"),
        };
        int t = AddTensor(name, shape, type, data);
        Quantization[t] = (scales, zeroPoints, dimension);
        return t;
    }

    public int Tensor(string name, int[] shape, float[]? data = null) =>
        AddTensor(name, shape, Float32, data is null ? null : System.Runtime.InteropServices.MemoryMarshal.AsBytes(data.AsSpan()).ToArray());

    public int IntTensor(string name, int[] shape, int[] data) =>
        AddTensor(name, shape, Int32, System.Runtime.InteropServices.MemoryMarshal.AsBytes(data.AsSpan()).ToArray());

    public int HalfTensor(string name, int[] shape, float[] data) =>
        AddTensor(name, shape, Float16, System.Runtime.InteropServices.MemoryMarshal.AsBytes(data.Select(v => (Half)v).ToArray().AsSpan()).ToArray());

    public int AddTensor(string name, int[] shape, byte type, byte[]? data)
    {
        _tensors.Add((name, shape, type, data));
        return _tensors.Count - 1;
    }

    public void Op(int code, int[] inputs, int[] outputs, byte optionsType = 0, Func<FlatBufferBuilder, int>? options = null, string? custom = null, byte[]? customOptions = null)
    {
        int index = _codes.FindIndex(c => c.Code == code && c.Custom == custom);
        if (index < 0) { _codes.Add((code, custom, Codes)); index = _codes.Count - 1; }
        _ops.Add((index, inputs, outputs, optionsType, options, customOptions));
    }

    /// <summary>A table of the given fields: (slot, writer) pairs.</summary>
    public static Func<FlatBufferBuilder, int> Options(int fields, Action<FlatBufferBuilder> write) => b =>
    {
        b.StartTable(fields);
        write(b);
        return b.EndTable();
    };

    private static int Ints(FlatBufferBuilder b, int[] values)
    {
        b.StartVector(4, values.Length, 4);
        for (int i = values.Length - 1; i >= 0; i--) b.AddInt(values[i]);
        return b.EndVector().Value;
    }

    private static int Offsets(FlatBufferBuilder b, int[] offsets)
    {
        b.StartVector(4, offsets.Length, 4);
        for (int i = offsets.Length - 1; i >= 0; i--) b.AddOffset(offsets[i]);
        return b.EndVector().Value;
    }

    private static int Bytes(FlatBufferBuilder b, byte[] data)
    {
        b.StartVector(1, data.Length, 16);
        for (int i = data.Length - 1; i >= 0; i--) b.AddByte(data[i]);
        return b.EndVector().Value;
    }

    public byte[] Build(int[] inputs, int[] outputs)
    {
        var b = new FlatBufferBuilder(1024);
        // Buffers: 0 is the empty sentinel, then one per constant tensor.
        var bufferOffsets = new List<int>();
        b.StartTable(3); bufferOffsets.Add(b.EndTable());
        var tensorBuffer = new int[_tensors.Count];
        for (int i = 0; i < _tensors.Count; i++)
        {
            if (_tensors[i].Data is not { } data) continue;
            int vec = Bytes(b, data);
            b.StartTable(3); b.AddOffset(0, vec, 0);
            bufferOffsets.Add(b.EndTable());
            tensorBuffer[i] = bufferOffsets.Count - 1;
        }
        var tensorOffsets = _tensors.Select((t, i) =>
        {
            int shape = Ints(b, t.Shape), name = b.CreateString(t.Name).Value;
            int quantization = 0;
            if (Quantization.TryGetValue(i, out var q))
            {
                b.StartVector(4, q.Scales.Length, 4);
                for (int k = q.Scales.Length - 1; k >= 0; k--) b.AddFloat(q.Scales[k]);
                int scales = b.EndVector().Value, zeroPoints = 0;
                if (q.ZeroPoints is { } zp)
                {
                    b.StartVector(8, zp.Length, 8);
                    for (int k = zp.Length - 1; k >= 0; k--) b.AddLong(zp[k]);
                    zeroPoints = b.EndVector().Value;
                }
                b.StartTable(7); // min, max, scale, zero_point, details_type, details, quantized_dimension
                b.AddOffset(2, scales, 0);
                if (zeroPoints != 0) b.AddOffset(3, zeroPoints, 0);
                b.AddInt(6, q.Dimension, 0);
                quantization = b.EndTable();
            }
            b.StartTable(5);
            if (quantization != 0) b.AddOffset(4, quantization, 0);
            b.AddOffset(0, shape, 0);
            b.AddByte(1, t.Type, 0);
            b.AddUint(2, BufferIndex.TryGetValue(i, out uint forced) ? forced : (uint)tensorBuffer[i], 0);
            b.AddOffset(3, name, 0);
            return b.EndTable();
        }).ToArray();
        var opOffsets = _ops.Select(o =>
        {
            int ins = Ints(b, o.Inputs), outs = Ints(b, o.Outputs);
            int options = o.Options?.Invoke(b) ?? 0;
            int custom = o.Custom is { } c ? Bytes(b, c) : 0;
            b.StartTable(7);
            b.AddUint(0, (uint)o.Code, 0);
            b.AddOffset(1, ins, 0);
            b.AddOffset(2, outs, 0);
            b.AddByte(3, o.OptionsType, 0);
            if (options != 0) b.AddOffset(4, options, 0);
            if (custom != 0) b.AddOffset(5, custom, 0);
            return b.EndTable();
        }).ToArray();
        int tensorsVec = Offsets(b, tensorOffsets), inputsVec = Ints(b, inputs), outputsVec = Ints(b, outputs), opsVec = Offsets(b, opOffsets);
        int sgName = b.CreateString("main").Value;
        b.StartTable(5);
        b.AddOffset(0, tensorsVec, 0); b.AddOffset(1, inputsVec, 0); b.AddOffset(2, outputsVec, 0); b.AddOffset(3, opsVec, 0); b.AddOffset(4, sgName, 0);
        int subgraph = b.EndTable();
        var codeOffsets = _codes.Select(c =>
        {
            int custom = c.Custom is { } s ? b.CreateString(s).Value : 0;
            b.StartTable(4);
            if (c.Style != CodeStyle.NewOnly) b.AddSbyte(0, (sbyte)Math.Min(c.Code, 127), 0);
            if (custom != 0) b.AddOffset(1, custom, 0);
            b.AddInt(2, 1, 1);
            if (c.Style != CodeStyle.DeprecatedOnly) b.AddInt(3, c.Code, 0);
            return b.EndTable();
        }).ToArray();
        int codesVec = Offsets(b, codeOffsets), subgraphsVec = Offsets(b, [subgraph]), buffersVec = Offsets(b, bufferOffsets.ToArray());
        int description = b.CreateString("test").Value;
        b.StartTable(5);
        b.AddUint(0, Version, 0);
        b.AddOffset(1, codesVec, 0);
        b.AddOffset(2, subgraphsVec, 0);
        b.AddOffset(3, description, 0);
        b.AddOffset(4, buffersVec, 0);
        b.Finish(b.EndTable(), "TFL3");
        return b.SizedByteArray();
    }
}
