using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text;
using MobileNetSharp.Graph;

namespace MobileNetSharp.Tensors;

/// <summary>
/// Reads and writes NumPy's <c>.npy</c> format (versions 1.0, 2.0 and 3.0), the interchange format of
/// the CLI (<c>mnet run --input x=FILE.npy</c>) and of the PyTorch fixtures.
/// </summary>
/// <remarks>
/// Layout: the magic <c>\x93NUMPY</c>, a major and minor version byte, the header length (uint16 in
/// 1.0, uint32 in 2.0/3.0, little-endian), the header (a Python dict literal such as
/// <c>{'descr': '&lt;f4', 'fortran_order': False, 'shape': (2, 3), }</c>, latin-1 in 1.x/2.x, UTF-8 in
/// 3.0), then the raw elements in C order.
/// <para>Read accepts <c>f4</c> and <c>f8</c> (returned as Float32), <c>f2</c> (Float16), <c>i8</c>, <c>i4</c>,
/// <c>u1</c>, <c>i1</c> and <c>b1</c>, in either byte order. Bad or hostile files throw
/// <see cref="ModelFormatException"/> only, and no size read from the file is allocated before it has
/// been checked against the bytes that are actually there.</para>
/// <para>Bytes after the array are left unread: several arrays saved one after another to the same
/// stream (a common NumPy idiom) can be read back by calling <see cref="Read(Stream)"/> repeatedly.</para>
/// </remarks>
public static class Npy
{
    static ReadOnlySpan<byte> Magic => [0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y'];

    // NumPy pads the header so the data starts on a 64-byte boundary (for memory mapping).
    const int Align = 64;

    // No valid header of the dtypes we support comes near this; NumPy itself refuses headers over
    // 10000 bytes by default. The cap bounds the header allocation on streams of unknown length.
    const int MaxHeaderBytes = 1 << 20;

    // NumPy's own limit on the number of dimensions (NPY_MAXDIMS in NumPy 2).
    const int MaxRank = 64;

    // Data moves through a buffer of this size, so memory grows only with bytes really read.
    const int ChunkBytes = 1 << 16;

    public static Tensor Read(string path)
    {
        using var s = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
        return Read(s, path);
    }

    public static Tensor Read(Stream s) => Read(s, "stream");

    public static void Write(string path, Tensor t)
    {
        using var s = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 16);
        Write(s, t);
    }

    public static void Write(Stream s, Tensor t)
    {
        var (descr, size) = t.DataType switch
        {
            DataType.Float32 => ("<f4", 4),
            DataType.Int64 => ("<i8", 8),
            DataType.Int32 => ("<i4", 4),
            DataType.UInt8 => ("|u1", 1),
            DataType.Int8 => ("|i1", 1),
            DataType.Bool => ("|b1", 1),
            DataType.Float16 => ("<f2", 2),
            _ => throw new NotSupportedException($"Cannot write {t.DataType} to .npy."),
        };
        // Python's tuple syntax: () for a scalar, (n,) for a vector, (a, b) otherwise.
        string shape = t.Rank == 1 ? $"({t.Shape[0]},)" : "(" + string.Join(", ", t.Shape) + ")";
        string dict = $"{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}";

        // Exactly what np.save writes, so our files are byte-identical to NumPy's: spare spaces for
        // growing the first axis in place (GROWTH_AXIS_MAX_DIGITS = 21), then 1..64 spaces and a
        // newline so the data starts on a 64-byte boundary.
        if (t.Rank > 0) dict += new string(' ', Math.Max(0, 21 - t.Shape[0].ToString().Length));
        int prefix = 10, hlen = dict.Length + 1;
        int pad = Align - (prefix + hlen) % Align;
        if (hlen + pad > ushort.MaxValue) // version 2.0 only for absurd ranks
        {
            prefix = 12;
            pad = Align - (prefix + hlen) % Align;
        }
        var head = new byte[prefix + hlen + pad];
        Magic.CopyTo(head);
        head[6] = (byte)(prefix == 10 ? 1 : 2);
        head[7] = 0;
        if (prefix == 10) BinaryPrimitives.WriteUInt16LittleEndian(head.AsSpan(8), (ushort)(hlen + pad));
        else BinaryPrimitives.WriteUInt32LittleEndian(head.AsSpan(8), (uint)(hlen + pad));
        Encoding.ASCII.GetBytes(dict, head.AsSpan(prefix));
        head.AsSpan(prefix + dict.Length, pad).Fill((byte)' ');
        head[^1] = (byte)'\n';
        s.Write(head);

        var buf = new byte[ChunkBytes];
        int perChunk = ChunkBytes / size;
        for (int done = 0; done < t.Length; done += perChunk)
        {
            int count = Math.Min(perChunk, t.Length - done);
            var chunk = buf.AsSpan(0, count * size);
            Tensors.ElementBytes.Of(t.Data).Slice(done * size, count * size).CopyTo(chunk);
            if (!BitConverter.IsLittleEndian) ReverseEach(chunk, size);
            // A bool in a .NET array can hold any byte (via unsafe code); NumPy wants 0 or 1.
            if (t.DataType == DataType.Bool)
                for (int i = 0; i < chunk.Length; i++) chunk[i] = chunk[i] != 0 ? (byte)1 : (byte)0;
            s.Write(chunk);
        }
    }

    static Tensor Read(Stream s, string source)
    {
        Span<byte> pre = stackalloc byte[12];
        int got = s.ReadAtLeast(pre[..8], 8, throwOnEndOfStream: false);
        if (got < 6 || !pre[..6].SequenceEqual(Magic))
            throw Bad(source, "not a NumPy .npy file (the magic bytes \\x93NUMPY are missing).");
        if (got < 8) throw Bad(source, "truncated in the version bytes.");
        int major = pre[6], minor = pre[7];
        if (major is < 1 or > 3 || minor != 0)
            throw Bad(source, $"unsupported .npy format version {major}.{minor} (1.0, 2.0 and 3.0 are supported).");

        int lengthBytes = major == 1 ? 2 : 4;
        if (s.ReadAtLeast(pre.Slice(8, lengthBytes), lengthBytes, throwOnEndOfStream: false) < lengthBytes)
            throw Bad(source, "truncated in the header length.");
        long headerLength = major == 1
            ? BinaryPrimitives.ReadUInt16LittleEndian(pre[8..])
            : BinaryPrimitives.ReadUInt32LittleEndian(pre[8..]);
        if (headerLength > MaxHeaderBytes)
            throw Bad(source, $"header length {headerLength} exceeds the {MaxHeaderBytes}-byte limit.");
        if (s.CanSeek && headerLength > s.Length - s.Position)
            throw Bad(source, $"header length {headerLength} runs past the end of the file ({s.Length - s.Position} bytes left).");

        var headerBytes = new byte[headerLength];
        if (s.ReadAtLeast(headerBytes, headerBytes.Length, throwOnEndOfStream: false) < headerBytes.Length)
            throw Bad(source, "truncated in the header.");
        // 3.0 exists only to allow UTF-8 (in field names of structured dtypes); 1.0 and 2.0 are latin-1.
        string header = major == 3 ? DecodeUtf8(headerBytes, source) : Encoding.Latin1.GetString(headerBytes);

        var (element, shape, fortran) = ParseHeader(header, source);
        if (fortran)
            throw Bad(source, "Fortran-order arrays are not supported; save a C-order copy (np.ascontiguousarray).");
        long count;
        try { count = Shape.Size(shape); }
        catch (ArgumentException e) { throw Bad(source, e.Message); }

        var data = ReadData(s, element, count, shape, source);
        return new Tensor(element.Target, shape, data);
    }

    /// <summary>An element type as stored in the file, and the tensor type it becomes.</summary>
    readonly record struct Element(string Descr, char Kind, int Size, bool BigEndian, DataType Target);

    static Element ParseDescr(string descr, string source)
    {
        // '<' little, '>' big, '|' not applicable (one byte), '=' the writer's native order. NumPy
        // writes '=' never, so reading it as ours is the best guess there is.
        if (descr.Length >= 3 && descr[0] is '<' or '>' or '|' or '=')
        {
            bool big = descr[0] == '>' || (descr[0] == '=' && !BitConverter.IsLittleEndian);
            DataType? target = descr[1..] switch
            {
                "f4" or "f8" => DataType.Float32,
                "f2" => DataType.Float16,
                "i8" => DataType.Int64,
                "i4" => DataType.Int32,
                "u1" => DataType.UInt8,
                "i1" => DataType.Int8,
                "b1" => DataType.Bool,
                _ => null,
            };
            if (target is { } t)
            {
                int size = descr[2] - '0';
                if (descr[0] == '|' && size != 1)
                    throw Bad(source, $"dtype '{descr}' has no byte order ('|') but is {size} bytes wide.");
                return new Element(descr, descr[1], size, big, t);
            }
        }
        throw Bad(source, $"unsupported dtype '{descr}' (supported: f4, f8, f2, i8, i4, u1, i1, b1).");
    }

    static (Element element, int[] shape, bool fortran) ParseHeader(string header, string source)
    {
        object? parsed;
        try { parsed = new DictParser(header).ParseAll(); }
        catch (FormatException e) { throw Bad(source, $"malformed header: {e.Message}"); }

        if (parsed is not Dictionary<string, object?> dict)
            throw Bad(source, "the header is not a Python dict.");
        // NumPy insists on exactly these three keys; so do we, since anything else means a format we
        // do not understand.
        string[] keys = ["descr", "fortran_order", "shape"];
        if (dict.Count != 3 || !keys.All(dict.ContainsKey))
            throw Bad(source, $"the header must have exactly the keys descr, fortran_order and shape; it has {string.Join(", ", dict.Keys)}.");

        if (dict["descr"] is not string descr)
            throw Bad(source, "structured (record) dtypes are not supported; 'descr' must be a simple type string.");
        if (dict["fortran_order"] is not bool fortran)
            throw Bad(source, "'fortran_order' must be True or False.");
        if (dict["shape"] is not List<object?> dims)
            throw Bad(source, "'shape' must be a tuple of integers.");
        if (dims.Count > MaxRank)
            throw Bad(source, $"rank {dims.Count} exceeds the maximum of {MaxRank}.");

        var shape = new int[dims.Count];
        for (int i = 0; i < shape.Length; i++)
        {
            if (dims[i] is not long d) throw Bad(source, $"shape entry #{i} is not an integer.");
            if (d < 0) throw Bad(source, $"shape entry #{i} is negative ({d}).");
            if (d > int.MaxValue) throw Bad(source, $"shape entry #{i} ({d}) is too large.");
            shape[i] = (int)d;
        }
        return (ParseDescr(descr, source), shape, fortran);
    }

    static Array ReadData(Stream s, Element e, long count, int[] shape, string source)
    {
        long need = count * e.Size; // count <= Shape.MaxElements and Size <= 8: no overflow
        if (s.CanSeek && need > s.Length - s.Position)
            throw Bad(source, $"data is {s.Length - s.Position} bytes but shape {Shape.Format(shape)} of '{e.Descr}' needs {need}.");

        // With a known length the whole array is safe to allocate now. Otherwise (pipes, network
        // streams) the array starts small and grows only as data really arrives.
        int perChunk = ChunkBytes / e.Size;
        int capacity = s.CanSeek ? (int)count : (int)Math.Min(count, perChunk);
        var dst = Array.CreateInstance(e.Target.ClrType(), capacity);
        var buf = new byte[ChunkBytes];
        for (long done = 0; done < count; done += perChunk)
        {
            int n = (int)Math.Min(perChunk, count - done);
            var chunk = buf.AsSpan(0, n * e.Size);
            if (s.ReadAtLeast(chunk, chunk.Length, throwOnEndOfStream: false) < chunk.Length)
                throw Bad(source, $"data ends early: shape {Shape.Format(shape)} of '{e.Descr}' needs {need} bytes.");
            if (done + n > dst.Length)
            {
                var bigger = Array.CreateInstance(dst.GetType().GetElementType()!, (int)Math.Min(count, Math.Max(2L * dst.Length, done + n)));
                Array.Copy(dst, bigger, dst.Length);
                dst = bigger;
            }
            if (e.BigEndian == BitConverter.IsLittleEndian) ReverseEach(chunk, e.Size);
            Decode(chunk, e, dst, (int)done, n);
        }
        return dst;
    }

    /// <summary>Converts <paramref name="n"/> host-order elements of the file's type into <paramref name="dst"/> at <paramref name="at"/>.</summary>
    static void Decode(ReadOnlySpan<byte> src, Element e, Array dst, int at, int n)
    {
        switch (e.Kind, e.Size)
        {
            case ('f', 8):
                var doubles = MemoryMarshal.Cast<byte, double>(src);
                var f64 = ((float[])dst).AsSpan(at, n);
                for (int i = 0; i < n; i++) f64[i] = (float)doubles[i];
                break;
            case ('b', 1):
                // Any non-zero byte is true, as in NumPy; store canonical 1 so == compares work.
                var bools = ((bool[])dst).AsSpan(at, n);
                for (int i = 0; i < n; i++) bools[i] = src[i] != 0;
                break;
            default:
                // Same width in file and tensor: a plain copy.
                src.CopyTo(Tensors.ElementBytes.Of(dst).Slice(at * e.Size, n * e.Size));
                break;
        }
    }

    static void ReverseEach(Span<byte> bytes, int size)
    {
        if (size == 1) return;
        for (int i = 0; i < bytes.Length; i += size) bytes.Slice(i, size).Reverse();
    }

    static string DecodeUtf8(byte[] bytes, string source)
    {
        try { return new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(bytes); }
        catch (ArgumentException) { throw Bad(source, "the version 3.0 header is not valid UTF-8."); }
    }

    static ModelFormatException Bad(string source, string message) => new($"NumPy file '{source}': {message}");

    /// <summary>
    /// Parses the Python literal subset NumPy headers use: dicts, tuples/lists, strings, integers,
    /// True/False/None. Throws <see cref="FormatException"/> with the offending position.
    /// </summary>
    sealed class DictParser(string text)
    {
        // Nesting is bounded so a header of "((((..." cannot exhaust the stack.
        const int MaxDepth = 8;
        int _pos;

        public object? ParseAll()
        {
            var v = Value(0);
            SkipSpace();
            if (_pos != text.Length) throw Error("unexpected text after the dict");
            return v;
        }

        object? Value(int depth)
        {
            if (depth > MaxDepth) throw Error("nested too deeply");
            SkipSpace();
            if (_pos >= text.Length) throw Error("unexpected end");
            char c = text[_pos];
            return c switch
            {
                '{' => Dict(depth),
                '(' => Sequence(')', depth),
                '[' => Sequence(']', depth),
                '\'' or '"' => String(),
                _ when c == '-' || c == '+' || char.IsAsciiDigit(c) => Integer(),
                _ when char.IsAsciiLetter(c) => Keyword(),
                _ => throw Error($"unexpected character '{c}'"),
            };
        }

        Dictionary<string, object?> Dict(int depth)
        {
            var d = new Dictionary<string, object?>();
            _pos++; // '{'
            while (true)
            {
                SkipSpace();
                if (Eat('}')) return d;
                if (Value(depth + 1) is not string key) throw Error("dict keys must be strings");
                SkipSpace();
                if (!Eat(':')) throw Error("expected ':'");
                if (!d.TryAdd(key, Value(depth + 1))) throw Error($"duplicate key '{key}'");
                SkipSpace();
                if (Eat('}')) return d;
                if (!Eat(',')) throw Error("expected ',' or '}'");
            }
        }

        List<object?> Sequence(char close, int depth)
        {
            var items = new List<object?>();
            _pos++; // '(' or '['
            while (true)
            {
                SkipSpace();
                if (Eat(close)) return items;
                items.Add(Value(depth + 1));
                SkipSpace();
                if (Eat(close)) return items;
                if (!Eat(',')) throw Error($"expected ',' or '{close}'");
            }
        }

        string String()
        {
            char quote = text[_pos++];
            var sb = new StringBuilder();
            while (_pos < text.Length && text[_pos] != quote)
            {
                // Escapes do not occur in the descr strings we accept; taking the next character
                // literally is enough to skip over them correctly.
                if (text[_pos] == '\\') _pos++;
                if (_pos < text.Length) sb.Append(text[_pos++]);
            }
            if (!Eat(quote)) throw Error("unterminated string");
            return sb.ToString();
        }

        long Integer()
        {
            int start = _pos;
            if (text[_pos] is '-' or '+') _pos++;
            while (_pos < text.Length && char.IsAsciiDigit(text[_pos])) _pos++;
            if (!long.TryParse(text.AsSpan(start, _pos - start), out long v))
                throw Error($"bad or out-of-range integer '{text[start.._pos]}'");
            if (_pos < text.Length && text[_pos] is 'L' or 'l') _pos++; // Python 2 longs, e.g. (3L, 4L)
            return v;
        }

        object? Keyword()
        {
            int start = _pos;
            while (_pos < text.Length && char.IsAsciiLetterOrDigit(text[_pos])) _pos++;
            return text[start.._pos] switch
            {
                "True" => true,
                "False" => false,
                "None" => null,
                var w => throw Error($"unknown name '{w}'"),
            };
        }

        void SkipSpace()
        {
            while (_pos < text.Length && char.IsWhiteSpace(text[_pos])) _pos++;
        }

        bool Eat(char c)
        {
            if (_pos < text.Length && text[_pos] == c) { _pos++; return true; }
            return false;
        }

        FormatException Error(string what) => new($"{what} at offset {_pos}");
    }
}
