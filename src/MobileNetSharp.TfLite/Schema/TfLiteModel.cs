using MobileNetSharp.Graph;

namespace MobileNetSharp.TfLite.Schema;

/// <summary>TFLite tensor element types (schema enum TensorType).</summary>
internal enum TensorType : byte
{
    Float32 = 0, Float16 = 1, Int32 = 2, UInt8 = 3, Int64 = 4, String = 5, Bool = 6, Int16 = 7, Complex64 = 8, Int8 = 9,
    Float64 = 10, Complex128 = 11, UInt64 = 12, Resource = 13, Variant = 14, UInt32 = 15, UInt16 = 16, Int4 = 17,
}

/// <summary>
/// A tensor's affine quantization (schema table QuantizationParameters): real = scale · (q - zero_point), one (scale,
/// zero point) per tensor or one per index of <see cref="Dimension"/> (quantized_dimension). Null on the tensor when
/// the file gives no scales.
/// </summary>
internal sealed record TfQuantization(float[] Scales, long[] ZeroPoints, int Dimension);

internal sealed record TfTensor(int Index, string Name, int[] Shape, TensorType Type, uint Buffer, TfQuantization? Quantization)
{
    public bool Quantized => Quantization is not null;
}

internal sealed record TfOperatorCode(int Builtin, string? CustomCode, int Version);

/// <summary>One operator: its opcode, tensor indices (-1 = omitted optional input), builtin options and custom options bytes.</summary>
internal sealed record TfOperator(int Index, int OpcodeIndex, int[] Inputs, int[] Outputs, byte OptionsType, Table? Options,
    (long Start, int Count) CustomOptions);

internal sealed record TfSubGraph(string Name, TfTensor[] Tensors, int[] Inputs, int[] Outputs, TfOperator[] Operators);

/// <summary>
/// The subset of the TFLite schema (tensorflow/lite/schema/schema.fbs) the importer reads, decoded eagerly with
/// every index checked: opcode indices, tensor indices, buffer indices and buffer extents. Field slots are the
/// schema's declaration order (a union takes two slots: its type, then its value).
/// </summary>
internal sealed class TfLiteModel
{
    public required FlatBuffer File { get; init; }
    public required uint Version { get; init; }
    public required TfOperatorCode[] OperatorCodes { get; init; }
    public required TfSubGraph[] SubGraphs { get; init; }
    /// <summary>Each buffer's bytes as (start, length) in the file; (0, 0) for an empty buffer.</summary>
    public required (long Start, long Length)[] Buffers { get; init; }
    public string? Description { get; init; }

    public ReadOnlySpan<byte> BufferBytes(uint index) => File.Bytes.AsSpan((int)Buffers[index].Start, (int)Buffers[index].Length);

    public static TfLiteModel Read(byte[] bytes)
    {
        var fb = new FlatBuffer(bytes);
        var model = fb.Root("TFL3");
        uint version = model.UInt(0);
        if (version != 3) throw FlatBuffer.Bad($"schema version {version}; only version 3 files are read");

        var codes = model.Tables(1, "operator_codes").Select((t, i) =>
        {
            // deprecated_builtin_code (byte, slot 0) is all older converters set; builtin_code (int, slot 3) holds codes
            // above 127. Readers take the larger of the two, as TFLite does, which also reads an ADD (0) left at its default.
            int deprecated = (sbyte)t.Byte(0);
            int code = Math.Max(deprecated, t.Int(3));
            return new TfOperatorCode(code, t.String(1, $"custom_code of operator code #{i}"), t.Int(2, 1));
        }).ToArray();

        var bufferTables = model.Tables(4, "buffers");
        var buffers = new (long, long)[bufferTables.Length];
        for (int i = 0; i < buffers.Length; i++)
        {
            var b = bufferTables[i];
            var (s, n) = b.Bytes(0, $"data of buffer #{i}");
            if (n > 0) { buffers[i] = (s, n); continue; }
            ulong offset = b.ULong(1), size = b.ULong(2);
            if (offset > 1)
            {
                // Large models keep buffers after the flatbuffer: offset is from the start of the file.
                if (offset > (ulong)bytes.Length || size > (ulong)bytes.Length - offset)
                    throw FlatBuffer.Bad($"buffer #{i} claims {size} bytes at offset {offset}, outside the {bytes.Length}-byte file");
                buffers[i] = ((long)offset, (long)size);
            }
        }

        var subgraphs = model.Tables(2, "subgraphs").Select((s, i) => ReadSubGraph(s, i, codes.Length, buffers.Length)).ToArray();
        if (subgraphs.Length == 0) throw FlatBuffer.Bad("the model has no subgraph");
        return new TfLiteModel
        {
            File = fb, Version = version, OperatorCodes = codes, SubGraphs = subgraphs, Buffers = buffers,
            Description = model.String(3, "description"),
        };
    }

    private static TfSubGraph ReadSubGraph(Table s, int index, int codeCount, int bufferCount)
    {
        string where = $"subgraph #{index}";
        var tensors = s.Tables(0, $"tensors of {where}").Select((t, i) =>
        {
            string what = $"tensor #{i}";
            var shape = t.Ints(0, $"shape of {what}");
            var type = (TensorType)t.Byte(1);
            uint buffer = t.UInt(2);
            if (buffer >= bufferCount && !(buffer == 0 && bufferCount == 0))
                throw FlatBuffer.Bad($"{what} refers to buffer {buffer}, but the model has {bufferCount} buffers");
            string name = t.String(3, $"name of {what}") ?? "";
            // QuantizationParameters: min (0), max (1), scale (2), zero_point (3), details (4, 5), quantized_dimension (6).
            TfQuantization? quantization = null;
            if (t.SubTable(4, $"quantization of {what}") is { } q && q.Vector(2, 4, $"scales of {what}").Count > 0)
                quantization = new TfQuantization(q.Floats(2, $"scales of {what}"), q.Longs(3, $"zero points of {what}"), q.Int(6));
            return new TfTensor(i, name, shape, type, buffer, quantization);
        }).ToArray();

        int[] Indices(int slot, string what, bool allowOmitted)
        {
            var r = s.Ints(slot, what);
            foreach (var t in r)
                if (t >= tensors.Length || t < (allowOmitted ? -1 : 0))
                    throw FlatBuffer.Bad($"{what} refers to tensor {t}, but {where} has {tensors.Length} tensors");
            return r;
        }

        var inputs = Indices(1, $"inputs of {where}", false);
        var outputs = Indices(2, $"outputs of {where}", false);
        var operators = s.Tables(3, $"operators of {where}").Select((o, i) =>
        {
            string what = $"operator #{i}";
            uint opcode = o.UInt(0);
            if (opcode >= codeCount) throw FlatBuffer.Bad($"{what} uses operator code {opcode}, but the model lists {codeCount}");
            var ins = o.Ints(1, $"inputs of {what}");
            var outs = o.Ints(2, $"outputs of {what}");
            foreach (var t in ins)
                if (t < -1 || t >= tensors.Length) throw FlatBuffer.Bad($"{what} reads tensor {t}, but {where} has {tensors.Length} tensors");
            foreach (var t in outs)
                if (t < 0 || t >= tensors.Length) throw FlatBuffer.Bad($"{what} writes tensor {t}, but {where} has {tensors.Length} tensors");
            byte optionsType = o.Byte(3);
            var options = optionsType != 0 ? o.SubTable(4, $"options of {what}") : null;
            var custom = o.Bytes(5, $"custom options of {what}");
            return new TfOperator(i, (int)opcode, ins, outs, optionsType, options, custom);
        }).ToArray();
        return new TfSubGraph(s.String(4, $"name of {where}") ?? "", tensors, inputs, outputs, operators);
    }
}
