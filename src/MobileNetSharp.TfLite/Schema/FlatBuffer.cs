using Google.FlatBuffers;
using MobileNetSharp.Graph;

namespace MobileNetSharp.TfLite.Schema;

/// <summary>
/// A flatbuffer read with every offset checked against the file before use. Reads go through
/// <see cref="ByteBuffer"/> (little-endian, as the format says) only after the bounds of what is read are known
/// to lie inside the file, so a truncated or hostile file gives <see cref="ModelFormatException"/>, never an
/// IndexOutOfRange. Arithmetic on offsets is done in 64 bits, so no length can wrap around.
/// </summary>
internal sealed class FlatBuffer
{
    private readonly ByteBuffer _bb;
    public int Length { get; }
    public byte[] Bytes { get; }

    public FlatBuffer(byte[] bytes)
    {
        Bytes = bytes;
        _bb = new ByteBuffer(bytes);
        Length = bytes.Length;
    }

    public static ModelFormatException Bad(string what) => new($"Not a valid TFLite model: {what}.");

    public void Need(long pos, long size, string what)
    {
        if (pos < 0 || size < 0 || pos + size > Length)
            throw Bad($"{what} at byte {pos} (+{size}) lies outside the {Length}-byte file");
    }

    public int Int(long pos) { Need(pos, 4, "a 32-bit value"); return _bb.GetInt((int)pos); }
    public uint UInt(long pos) { Need(pos, 4, "a 32-bit value"); return _bb.GetUint((int)pos); }
    public ushort UShort(long pos) { Need(pos, 2, "a 16-bit value"); return _bb.GetUshort((int)pos); }
    public byte Byte(long pos) { Need(pos, 1, "a byte"); return _bb.Get((int)pos); }
    public float Float(long pos) { Need(pos, 4, "a float"); return _bb.GetFloat((int)pos); }
    public long Long(long pos) { Need(pos, 8, "a 64-bit value"); return _bb.GetLong((int)pos); }
    public ulong ULong(long pos) { Need(pos, 8, "a 64-bit value"); return _bb.GetUlong((int)pos); }

    /// <summary>The table an unsigned offset at <paramref name="pos"/> points to.</summary>
    public Table TableAt(long pos, string what) => new(this, pos + UInt(pos), what);

    /// <summary>The root table, after checking the file identifier (bytes 4-7) is <paramref name="identifier"/>.</summary>
    public Table Root(string identifier)
    {
        if (Length < 8) throw Bad($"the file is {Length} bytes long, too short for a flatbuffer");
        var id = System.Text.Encoding.ASCII.GetString(Bytes, 4, 4);
        if (id != identifier) throw Bad($"the file identifier is '{Printable(id)}', not '{identifier}' (is this a .tflite file?)");
        return TableAt(0, "the model table");
    }

    private static string Printable(string s) => new(s.Select(c => c is >= ' ' and < (char)127 ? c : '?').ToArray());
}

/// <summary>One flatbuffer table: its position, its vtable and the size of its inline data, all checked.</summary>
internal readonly struct Table
{
    private readonly FlatBuffer _fb;
    private readonly long _pos, _vtable;
    private readonly int _vtableSize, _inlineSize;
    public string What { get; }

    public Table(FlatBuffer fb, long pos, string what)
    {
        _fb = fb;
        What = what;
        fb.Need(pos, 4, what);
        _pos = pos;
        _vtable = pos - fb.Int(pos);
        fb.Need(_vtable, 4, $"the vtable of {what}");
        _vtableSize = fb.UShort(_vtable);
        _inlineSize = fb.UShort(_vtable + 2);
        if (_vtableSize < 4 || (_vtableSize & 1) != 0) throw FlatBuffer.Bad($"the vtable of {what} has size {_vtableSize}");
        fb.Need(_vtable, _vtableSize, $"the vtable of {what}");
        if (_inlineSize < 4) throw FlatBuffer.Bad($"{what} has inline size {_inlineSize}");
        fb.Need(pos, _inlineSize, what);
    }

    public FlatBuffer Buffer => _fb;

    /// <summary>The absolute position of field <paramref name="slot"/> (0-based), or -1 when absent; checked to hold <paramref name="size"/> bytes.</summary>
    private long Field(int slot, int size)
    {
        int entry = 4 + 2 * slot;
        if (entry + 2 > _vtableSize) return -1;
        int off = _fb.UShort(_vtable + entry);
        if (off == 0) return -1;
        if (off + size > _inlineSize) throw FlatBuffer.Bad($"field {slot} of {What} lies outside the table");
        return _pos + off;
    }

    public bool Has(int slot) => Field(slot, 1) >= 0;
    public byte Byte(int slot, byte dflt = 0) => Field(slot, 1) is var p and >= 0 ? _fb.Byte(p) : dflt;
    public bool Bool(int slot, bool dflt = false) => Field(slot, 1) is var p and >= 0 ? _fb.Byte(p) != 0 : dflt;
    public int Int(int slot, int dflt = 0) => Field(slot, 4) is var p and >= 0 ? _fb.Int(p) : dflt;
    public uint UInt(int slot, uint dflt = 0) => Field(slot, 4) is var p and >= 0 ? _fb.UInt(p) : dflt;
    public float Float(int slot, float dflt = 0) => Field(slot, 4) is var p and >= 0 ? _fb.Float(p) : dflt;
    public ulong ULong(int slot, ulong dflt = 0) => Field(slot, 8) is var p and >= 0 ? _fb.ULong(p) : dflt;

    public Table? SubTable(int slot, string what) => Field(slot, 4) is var p and >= 0 ? _fb.TableAt(p, what) : null;

    /// <summary>A vector field: the position of its first element and its length, checked to fit the file; (0, 0) when absent.</summary>
    public (long Start, int Count) Vector(int slot, int elementSize, string what)
    {
        long p = Field(slot, 4);
        if (p < 0) return (0, 0);
        long v = p + _fb.UInt(p);
        uint count = _fb.UInt(v);
        if ((long)count * elementSize > _fb.Length) throw FlatBuffer.Bad($"{what} claims {count} elements, more than the file can hold");
        _fb.Need(v + 4, (long)count * elementSize, what);
        return (v + 4, (int)count);
    }

    public int[] Ints(int slot, string what)
    {
        var (s, n) = Vector(slot, 4, what);
        var r = new int[n];
        for (int i = 0; i < n; i++) r[i] = _fb.Int(s + 4L * i);
        return r;
    }

    public float[] Floats(int slot, string what)
    {
        var (s, n) = Vector(slot, 4, what);
        var r = new float[n];
        for (int i = 0; i < n; i++) r[i] = _fb.Float(s + 4L * i);
        return r;
    }

    public long[] Longs(int slot, string what)
    {
        var (s, n) = Vector(slot, 8, what);
        var r = new long[n];
        for (int i = 0; i < n; i++) r[i] = _fb.Long(s + 8L * i);
        return r;
    }

    public Table[] Tables(int slot, string what)
    {
        var (s, n) = Vector(slot, 4, what);
        var r = new Table[n];
        for (int i = 0; i < n; i++) r[i] = _fb.TableAt(s + 4L * i, $"{what} #{i}");
        return r;
    }

    public (long Start, int Count) Bytes(int slot, string what) => Vector(slot, 1, what);

    public string? String(int slot, string what)
    {
        var (s, n) = Vector(slot, 1, what);
        if (!Has(slot)) return null;
        return System.Text.Encoding.UTF8.GetString(_fb.Bytes, (int)s, n);
    }
}
