using System.Text;
using MobileNetSharp.Graph;
using MobileNetSharp.Tensors;

namespace MobileNetSharp.Tests.Tensors;

public class NpyTests
{
    // ---- round trips ----------------------------------------------------------------------------

    public static TheoryData<DataType, int> DtypesAndRanks()
    {
        var data = new TheoryData<DataType, int>();
        foreach (var t in Enum.GetValues<DataType>())
            for (int rank = 0; rank <= 5; rank++) data.Add(t, rank);
        return data;
    }

    [Theory, MemberData(nameof(DtypesAndRanks))]
    public void RoundTripsEveryDtypeAndRank(DataType type, int rank)
    {
        int[] shape = new[] { 2, 3, 1, 4, 2 }[..rank];
        var t = RandomTensor(type, shape, seed: rank * 31 + (int)type);

        var ms = new MemoryStream();
        Npy.Write(ms, t);
        Assert.Equal(0, (ms.Length - ElementBytes(t)) % 64); // data starts on a 64-byte boundary, as in NumPy
        AssertSame(t, Npy.Read(new MemoryStream(ms.ToArray())));
        AssertSame(t, Npy.Read(new NonSeekable(ms.ToArray())));
    }

    [Fact]
    public void RoundTripsThroughAFile()
    {
        var t = RandomTensor(DataType.Float32, [2, 3, 5], seed: 7);
        string path = Path.Combine(Path.GetTempPath(), $"npy-{Guid.NewGuid():N}.npy");
        try
        {
            Npy.Write(path, t);
            AssertSame(t, Npy.Read(path));
        }
        finally { File.Delete(path); }
    }

    [Fact]
    public void RoundTripsArraysLargerThanOneChunk()
    {
        // 300k elements span several 64 KiB chunks; the non-seekable path also grows its array.
        foreach (var type in new[] { DataType.Float32, DataType.Int64, DataType.Bool })
        {
            var t = RandomTensor(type, [3, 100_000], seed: 3);
            var ms = new MemoryStream();
            Npy.Write(ms, t);
            AssertSame(t, Npy.Read(new MemoryStream(ms.ToArray())));
            AssertSame(t, Npy.Read(new NonSeekable(ms.ToArray())));
        }
    }

    [Fact]
    public void ReadsConsecutiveArraysFromOneStream()
    {
        // np.save called twice on one open file: each Read stops right after its array.
        var a = RandomTensor(DataType.Float32, [4], seed: 1);
        var b = RandomTensor(DataType.Int32, [2, 2], seed: 2);
        var ms = new MemoryStream();
        Npy.Write(ms, a);
        Npy.Write(ms, b);
        ms.Position = 0;
        AssertSame(a, Npy.Read(ms));
        AssertSame(b, Npy.Read(ms));
        Assert.Equal(ms.Length, ms.Position);
    }

    // ---- files written by NumPy (tools/fixtures/gen_npy.py) --------------------------------------

    static readonly float[] Six = [-1f, -0.5f, 0f, 0.5f, 1f, 1.5f]; // np.arange(6) * 0.5 - 1

    public static TheoryData<string, Tensor, bool> NumPyFiles() => new()
    {
        // name, expected tensor, whether our writer reproduces the file byte for byte
        { "f4_2x3", new Tensor(Six, 2, 3), true },
        { "f4_scalar", new Tensor([3.5f]), true },
        { "f4_empty_0x3", new Tensor(DataType.Float32, [0, 3], Array.Empty<float>()), true },
        { "f4_rank5", new Tensor(Enumerable.Range(0, 12).Select(i => i * 0.25f).ToArray(), 2, 1, 3, 1, 2), true },
        { "i8_4", new Tensor([-1L, 0, 1, 1L << 40], 4), true },
        { "i4_2x2x2", new Tensor(DataType.Int32, [2, 2, 2], Enumerable.Range(-4, 8).ToArray()), true },
        { "u1_5", new Tensor(DataType.UInt8, [5], new byte[] { 0, 1, 127, 128, 255 }), true },
        { "i1_5", new Tensor(DataType.Int8, [5], new sbyte[] { -128, -1, 0, 1, 127 }), true },
        { "b1_2x2", new Tensor(DataType.Bool, [2, 2], new[] { true, false, false, true }), true },
        { "f4_big_endian", new Tensor(Enumerable.Range(0, 6).Select(i => (float)i).ToArray(), 2, 3), false },
        { "f8_2x2", new Tensor([1.5f, -2.25f, (float)1e-3, (float)1e30], 2, 2), false },
        { "f2_4", new Tensor(DataType.Float16, [4], new[] { (Half)0.5f, (Half)(-1f), (Half)2f, (Half)65504f }), false },
        { "i8_big_endian", new Tensor([-1L, 0, 1, 1L << 40], 4), false },
        { "f4_v2", new Tensor(Six, 2, 3), false },
        { "f4_v3", new Tensor(Six, 2, 3), false },
    };

    [Theory, MemberData(nameof(NumPyFiles))]
    public void ReadsFilesWrittenByNumPy(string name, Tensor expected, bool byteIdentical)
    {
        string path = NpyFixture(name);
        var t = Npy.Read(path);
        AssertSame(expected, t);

        var ms = new MemoryStream();
        Npy.Write(ms, t);
        if (byteIdentical) Assert.Equal(File.ReadAllBytes(path), ms.ToArray());
    }

    [Fact]
    public void RefusesFortranOrderWithAClearMessage()
    {
        var e = Assert.Throws<ModelFormatException>(() => Npy.Read(NpyFixture("f4_fortran")));
        Assert.Contains("Fortran", e.Message);
    }

    // ---- hostile input -----------------------------------------------------------------------------

    [Theory]
    [InlineData("f4_2x3")]
    [InlineData("f4_scalar")]
    [InlineData("i8_4")]
    [InlineData("f4_v2")]
    [InlineData("f4_v3")]
    public void EveryTruncationThrowsModelFormatException(string name)
    {
        byte[] bytes = File.ReadAllBytes(NpyFixture(name));
        for (int n = 0; n < bytes.Length; n++)
        {
            Assert.Throws<ModelFormatException>(() => Npy.Read(new MemoryStream(bytes, 0, n)));
            Assert.Throws<ModelFormatException>(() => Npy.Read(new NonSeekable(bytes[..n])));
        }
    }

    public static TheoryData<string, string> BadHeaders() => new()
    {
        // header text (data: 24 zero bytes follow), a word the message must contain
        { "{'descr': '<f4', 'fortran_order': False, 'shape': (-1, 3), }", "negative" },
        { "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999, 3), }", "too large" },
        { "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999999,), }", "out-of-range" },
        { "{'descr': '<f4', 'fortran_order': False, 'shape': (100000, 100000, 100000), }", "elements" },
        { "{'descr': '<f4', 'fortran_order': False, 'shape': (1000000000,), }", "needs" },
        { "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 'a'), }", "integer" },
        { "{'descr': '<f4', 'fortran_order': False, 'shape': 6, }", "tuple" },
        { "{'descr': '<f4', 'fortran_order': False, }", "keys" },
        { "{'descr': '<f4', 'fortran_order': False, 'shape': (6,), 'extra': 1, }", "keys" },
        { "{'descr': '<f4', 'descr': '<f4', 'shape': (6,), }", "duplicate" },
        { "{'descr': '<f4', 'fortran_order': 0, 'shape': (6,), }", "fortran_order" },
        { "{'descr': '<c8', 'fortran_order': False, 'shape': (3,), }", "unsupported dtype" },
        { "{'descr': '<U4', 'fortran_order': False, 'shape': (3,), }", "unsupported dtype" },
        { "{'descr': '|f4', 'fortran_order': False, 'shape': (6,), }", "byte order" },
        { "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (6,), }", "structured" },
        { "{'descr': '<f4', 'fortran_order': False, 'shape': (6,)", "malformed" },
        { "{'descr': '<f4, 'fortran_order': False, 'shape': (6,), }", "malformed" },
        { "{'descr': '<f4' 'fortran_order': False, 'shape': (6,), }", "malformed" },
        { "{'descr': '<f4', 'fortran_order': Maybe, 'shape': (6,), }", "malformed" },
        { "{'descr': '<f4', 'fortran_order': False, 'shape': (6,), } trailing", "malformed" },
        { "{'descr': '<f4', 'fortran_order': False, 'shape': " + new string('(', 60_000) + "6,), }", "nested too deeply" },
        { "(6,)", "not a Python dict" },
        { "", "malformed" },
        { "{'descr': '<f4', 'fortran_order': False, 'shape': (" + string.Join(",", Enumerable.Repeat("1", 65)) + "), }", "rank" },
    };

    [Theory, MemberData(nameof(BadHeaders))]
    public void BadHeadersThrowClearErrors(string header, string expected)
    {
        foreach (byte version in new byte[] { 1, 2 })
        {
            byte[] file = NpyBytes(header, version, new byte[24]);
            var e = Assert.Throws<ModelFormatException>(() => Npy.Read(new MemoryStream(file)));
            Assert.Contains(expected, e.Message, StringComparison.OrdinalIgnoreCase);
            Assert.Throws<ModelFormatException>(() => Npy.Read(new NonSeekable(file)));
        }
    }

    [Fact]
    public void BadPreamblesThrowClearErrors()
    {
        byte[] good = File.ReadAllBytes(NpyFixture("f4_2x3"));

        var badMagic = (byte[])good.Clone();
        badMagic[1] = (byte)'X';
        Assert.Contains("magic", Read(badMagic).Message);
        Assert.Contains("magic", Read("PK\x03\x04 this is a zip"u8.ToArray()).Message);

        var badVersion = (byte[])good.Clone();
        badVersion[6] = 4;
        Assert.Contains("version 4.0", Read(badVersion).Message);

        // Header lengths that point far beyond the end of the file.
        var longV1 = (byte[])good.Clone();
        longV1[8] = longV1[9] = 0xFF;
        Assert.Contains("past the end", Read(longV1).Message);
        byte[] longV2 = [.. good[..6], 2, 0, 0xFF, 0xFF, 0xFF, 0xFF, .. good[10..]];
        Assert.Contains("limit", Read(longV2).Message);
        byte[] midV2 = [.. good[..6], 2, 0, 0x00, 0x00, 0x01, 0x00, .. good[10..]]; // 64 KiB
        Assert.Contains("past the end", Read(midV2).Message);

        byte[] badUtf8 = NpyBytes("{'descr': '<f4', 'fortran_order': False, 'shape': (6,), }", 3, new byte[24]);
        badUtf8[12] = 0xC3; // a lone UTF-8 lead byte in place of '{'
        badUtf8[13] = 0x28;
        Assert.Contains("UTF-8", Read(badUtf8).Message);

        static ModelFormatException Read(byte[] b) => Assert.Throws<ModelFormatException>(() => Npy.Read(new MemoryStream(b)));
    }

    [Fact]
    public void AbsurdShapeOnAStreamOfUnknownLengthDoesNotAllocateIt()
    {
        // A billion floats claimed, 24 bytes present, and no length to check against: the reader must
        // fail at the end of the data without having allocated 4 GB first.
        byte[] file = NpyBytes("{'descr': '<f4', 'fortran_order': False, 'shape': (1000000000,), }", 1, new byte[24]);
        long before = GC.GetAllocatedBytesForCurrentThread();
        var e = Assert.Throws<ModelFormatException>(() => Npy.Read(new NonSeekable(file)));
        Assert.Contains("ends early", e.Message);
        Assert.True(GC.GetAllocatedBytesForCurrentThread() - before < 4 << 20);
    }

    [Fact]
    public void MutatedFilesThrowOnlyModelFormatException()
    {
        // Seeded mutation fuzz: flipped bits, overwritten bytes, cut or extended files. Each mutant
        // must either read (the data section has no checksum) or throw ModelFormatException.
        var rng = new Random(20240601);
        string[] seeds = ["f4_2x3", "f4_rank5", "i8_big_endian", "b1_2x2", "f4_v3", "f8_2x2"];
        int read = 0, refused = 0;
        foreach (string name in seeds)
        {
            byte[] original = File.ReadAllBytes(NpyFixture(name));
            for (int k = 0; k < 1000; k++)
            {
                byte[] m = Mutate(original, rng);
                try { Npy.Read(new MemoryStream(m)); read++; }
                catch (ModelFormatException) { refused++; }
            }
        }
        Assert.True(read > 0 && refused > 0, $"read {read}, refused {refused}");
    }

    // ---- helpers ---------------------------------------------------------------------------------

    static byte[] Mutate(byte[] original, Random rng)
    {
        var m = (byte[])original.Clone();
        switch (rng.Next(4))
        {
            case 0: // flip one bit, mostly in the header where it matters
                int at = rng.Next(Math.Min(m.Length, rng.Next(2) == 0 ? 128 : m.Length));
                m[at] ^= (byte)(1 << rng.Next(8));
                return m;
            case 1: // overwrite a header byte with a character the parser treats specially
                const string special = "{}()[],:'\"-0123456789 \nTFL\\";
                m[10 + rng.Next(Math.Min(m.Length - 10, 118))] = (byte)special[rng.Next(special.Length)];
                return m;
            case 2: // cut
                return m[..rng.Next(m.Length)];
            default: // append garbage
                var extra = new byte[rng.Next(1, 64)];
                rng.NextBytes(extra);
                return [.. m, .. extra];
        }
    }

    /// <summary>A .npy file with the given header text (padded as NumPy pads it) and data bytes.</summary>
    static byte[] NpyBytes(string header, byte version, byte[] data)
    {
        byte[] text = (version == 3 ? Encoding.UTF8 : Encoding.Latin1).GetBytes(header + "\n");
        int prefix = version == 1 ? 10 : 12;
        var b = new List<byte> { 0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y', version, 0 };
        if (version == 1) b.AddRange(BitConverter.GetBytes((ushort)text.Length));
        else b.AddRange(BitConverter.GetBytes((uint)text.Length));
        b.AddRange(text);
        b.AddRange(data);
        Assert.Equal(prefix + text.Length + data.Length, b.Count);
        return [.. b];
    }

    static Tensor RandomTensor(DataType type, int[] shape, int seed)
    {
        var rng = new Random(seed);
        int n = (int)Shape.Size(shape);
        Array data = type switch
        {
            // Include the values most likely to be mangled: NaN, infinities, negative zero, extremes.
            DataType.Float32 => Enumerable.Range(0, n).Select(i => (i % 7) switch
            {
                0 => float.NaN, 1 => float.NegativeInfinity, 2 => -0f, 3 => float.MaxValue,
                _ => (float)(rng.NextDouble() * 2e3 - 1e3),
            }).ToArray(),
            DataType.Int64 => Enumerable.Range(0, n).Select(i => i % 5 == 0 ? long.MinValue : rng.NextInt64(long.MinValue, long.MaxValue)).ToArray(),
            DataType.Int32 => Enumerable.Range(0, n).Select(i => i % 5 == 0 ? int.MaxValue : rng.Next(int.MinValue, int.MaxValue)).ToArray(),
            DataType.UInt8 => Enumerable.Range(0, n).Select(_ => (byte)rng.Next(256)).ToArray(),
            DataType.Int8 => Enumerable.Range(0, n).Select(_ => (sbyte)rng.Next(-128, 128)).ToArray(),
            DataType.Bool => Enumerable.Range(0, n).Select(_ => rng.Next(2) == 1).ToArray(),
            DataType.Float16 => Enumerable.Range(0, n).Select(i => i % 7 == 0 ? Half.NaN : (Half)(rng.NextDouble() * 2e3 - 1e3)).ToArray(),
            _ => throw new NotSupportedException(type.ToString()),
        };
        return new Tensor(type, shape, data);
    }

    static long ElementBytes(Tensor t) => (long)t.Length * t.DataType.SizeOf();

    /// <summary>Same type, shape and bit-identical elements (so NaN equals NaN and -0 differs from 0).</summary>
    static void AssertSame(Tensor expected, Tensor actual)
    {
        Assert.Equal(expected.DataType, actual.DataType);
        Assert.Equal(expected.Shape, actual.Shape);
        if (expected.Data is float[] e)
            Assert.Equal(e.Select(BitConverter.SingleToInt32Bits), actual.Floats.Select(BitConverter.SingleToInt32Bits));
        else
            Assert.Equal(expected.Data.Cast<object>(), actual.Data.Cast<object>());
    }

    static string NpyFixture(string name) => Path.Combine(FixtureRoot.Value, "npy", name + ".npy");

    /// <summary>tests/fixtures/torchvision, found by walking up from the test binaries to the repo root.</summary>
    static readonly Lazy<string> FixtureRoot = new(() =>
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir != null; dir = dir.Parent)
        {
            string candidate = Path.Combine(dir.FullName, "tests", "fixtures", "torchvision");
            if (Directory.Exists(candidate)) return candidate;
        }
        throw new DirectoryNotFoundException("tests/fixtures/torchvision not found above " + AppContext.BaseDirectory);
    });

    /// <summary>A read-only stream that cannot seek or tell its length, like a pipe.</summary>
    sealed class NonSeekable(byte[] bytes) : Stream
    {
        readonly MemoryStream _inner = new(bytes);
        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override int Read(byte[] buffer, int offset, int count) => _inner.Read(buffer, offset, Math.Min(count, 7)); // short reads on purpose
        public override void Flush() { }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
