using System.IO.Compression;

namespace MobileNetSharp.Training.Data;

/// <summary>One IDX array (the MNIST file format): its dimensions and its bytes, row-major.</summary>
public sealed record IdxArray(int[] Dims, byte[] Data)
{
    public long Count => Dims.Length == 0 ? 1 : Dims[0];
}

/// <summary>
/// Reads IDX files (LeCun's MNIST format, also Fashion-MNIST): a 4-byte magic 0x00 0x00 TYPE RANK, RANK
/// big-endian int32 sizes, then the values. Only unsigned bytes (type 0x08) are accepted, which is what
/// image and label files hold. Files may be gzip-compressed (detected by the gzip magic, not the name).
/// <para>
/// Every size is checked before anything is allocated: rank 1..4, each dimension 1..<see cref="MaxDimension"/>,
/// at most <see cref="MaxBytes"/> in total, and the payload must be exactly as long as the header says
/// (a truncated file or trailing bytes are an error). Errors are <see cref="InvalidDataException"/> naming the file.
/// </para>
/// </summary>
public static class Idx
{
    public const int MaxDimension = 100_000_000;
    /// <summary>The largest payload accepted: 1 GiB (Fashion-MNIST's training images are 47 MB).</summary>
    public const long MaxBytes = 1L << 30;
    private const byte UnsignedByte = 0x08;

    public static IdxArray Read(string path)
    {
        using var file = File.OpenRead(path);
        return Read(file, path);
    }

    /// <param name="name">Names the source in error messages.</param>
    public static IdxArray Read(Stream stream, string name)
    {
        var head = new byte[2];
        Stream s = stream;
        // Peek at the gzip magic (1f 8b) without needing a seekable stream.
        int got = ReadFully(stream, head, name, allowShort: true);
        bool gzip = got == 2 && head[0] == 0x1f && head[1] == 0x8b;
        long? rawLength = !gzip && stream.CanSeek ? stream.Length - stream.Position + got : null;
        var prefix = new MemoryStream(head, 0, got);
        s = new ConcatStream(prefix, stream);
        if (gzip) s = new GZipStream(s, CompressionMode.Decompress);
        try
        {
            return ReadRaw(s, name, rawLength);
        }
        catch (InvalidDataException e) when (!e.Message.Contains(name, StringComparison.Ordinal))
        {
            // GZipStream's own errors (bad CRC, corrupt blocks) do not say which file.
            throw new InvalidDataException($"{name}: corrupt gzip data ({e.Message}).", e);
        }
        finally
        {
            if (gzip) s.Dispose();
        }
    }

    private static IdxArray ReadRaw(Stream s, string name, long? rawLength)
    {
        var magic = new byte[4];
        if (ReadFully(s, magic, name, allowShort: true) < 4) throw new InvalidDataException($"{name}: not an IDX file (shorter than its 4-byte magic).");
        if (magic[0] != 0 || magic[1] != 0)
            throw new InvalidDataException($"{name}: not an IDX file (magic {magic[0]:x2} {magic[1]:x2} {magic[2]:x2} {magic[3]:x2}; expected 00 00 TYPE RANK).");
        if (magic[2] != UnsignedByte) throw new InvalidDataException($"{name}: IDX element type 0x{magic[2]:x2} is not supported (only unsigned bytes, 0x08).");
        int rank = magic[3];
        if (rank < 1 || rank > 4) throw new InvalidDataException($"{name}: IDX rank {rank} is out of range (1..4).");
        var dimBytes = new byte[4 * rank];
        if (ReadFully(s, dimBytes, name, allowShort: true) < dimBytes.Length) throw new InvalidDataException($"{name}: truncated IDX header ({rank} dimensions expected).");
        var dims = new int[rank];
        long total = 1;
        for (int i = 0; i < rank; i++)
        {
            uint d = (uint)(dimBytes[4 * i] << 24 | dimBytes[4 * i + 1] << 16 | dimBytes[4 * i + 2] << 8 | dimBytes[4 * i + 3]);
            if (d < 1 || d > MaxDimension) throw new InvalidDataException($"{name}: IDX dimension {i} is {d}, outside 1..{MaxDimension}.");
            dims[i] = (int)d;
            total *= d;
            if (total > MaxBytes) throw new InvalidDataException($"{name}: IDX array of [{string.Join("x", dims.Take(i + 1))}...] exceeds {MaxBytes} bytes.");
        }
        long expected = 4 + 4L * rank + total;
        if (rawLength is { } len && len != expected)
            throw new InvalidDataException(len < expected
                ? $"{name}: truncated IDX data: {len - 4 - 4 * rank} of {total} bytes for [{string.Join("x", dims)}]."
                : $"{name}: trailing bytes after the IDX data of [{string.Join("x", dims)}] ({len - expected} extra).");
        // Compressed input: grow the buffer as data arrives, so a small file that claims a huge array cannot
        // make us allocate the claimed size up front.
        var data = new byte[Math.Min(total, 1 << 22)];
        long n = 0;
        while (true)
        {
            int r = s.Read(data, (int)n, data.Length - (int)n);
            n += r;
            if (n == total || r == 0 && n < data.Length) break;
            if (n == data.Length) Array.Resize(ref data, (int)Math.Min(total, 2L * data.Length));
        }
        if (n < total) throw new InvalidDataException($"{name}: truncated IDX data: {n} of {total} bytes for [{string.Join("x", dims)}].");
        if (s.ReadByte() >= 0) throw new InvalidDataException($"{name}: trailing bytes after the IDX data of [{string.Join("x", dims)}].");
        return new IdxArray(dims, data);
    }

    private static int ReadFully(Stream s, byte[] buffer, string name, bool allowShort)
    {
        int n = 0;
        while (n < buffer.Length)
        {
            int r = s.Read(buffer, n, buffer.Length - n);
            if (r == 0) break;
            n += r;
        }
        if (!allowShort && n < buffer.Length) throw new InvalidDataException($"{name}: unexpected end of file.");
        return n;
    }

    /// <summary>Writes an unsigned-byte IDX array (optionally gzipped): test fixtures and dataset subsets.</summary>
    public static void Write(Stream stream, IdxArray array, bool gzip = false)
    {
        if (array.Dims.Length is < 1 or > 4) throw new ArgumentException("IDX rank must be 1..4.");
        long total = array.Dims.Aggregate(1L, (a, d) => a * d);
        if (total != array.Data.Length) throw new ArgumentException($"IDX data has {array.Data.Length} bytes, dims say {total}.");
        using var z = gzip ? new GZipStream(stream, CompressionLevel.Fastest, leaveOpen: true) : null;
        Stream s = (Stream?)z ?? stream;
        s.Write([0, 0, UnsignedByte, (byte)array.Dims.Length]);
        foreach (int d in array.Dims) s.Write([(byte)(d >> 24), (byte)(d >> 16), (byte)(d >> 8), (byte)d]);
        s.Write(array.Data);
    }

    /// <summary>Reads the bytes already peeked, then the rest of the stream.</summary>
    private sealed class ConcatStream(Stream first, Stream second) : Stream
    {
        public override int Read(byte[] buffer, int offset, int count)
        {
            int n = first.Read(buffer, offset, count);
            return n > 0 ? n : second.Read(buffer, offset, count);
        }
        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
