namespace MobileNetSharp.Kernels;

/// <summary>
/// A pinned float buffer whose first element sits on a 64-byte boundary, so whole-vector loads of packed
/// weights never straddle two cache lines (a split 512-bit load costs about twice a normal one; .NET arrays
/// only guarantee 8-byte alignment). Pinned arrays never move, so the offset found once stays valid.
/// </summary>
internal sealed unsafe class AlignedFloats
{
    private const int AlignFloats = 16;
    private readonly float[] _array;
    private readonly int _offset;

    public AlignedFloats(long length)
    {
        _array = GC.AllocateArray<float>(checked((int)(length + AlignFloats)), pinned: true);
        nint address = (nint)System.Runtime.CompilerServices.Unsafe.AsPointer(ref _array[0]);
        _offset = (int)((64 - address % 64) % 64 / sizeof(float));
        Length = length;
    }

    public long Length { get; }

    /// <summary>The aligned start; valid for the object's lifetime (the array is pinned).</summary>
    public float* Pointer => (float*)System.Runtime.CompilerServices.Unsafe.AsPointer(ref _array[_offset]);

    public Span<float> Span => _array.AsSpan(_offset, (int)Length);
}
