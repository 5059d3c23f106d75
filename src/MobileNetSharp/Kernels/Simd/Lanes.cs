using System.Runtime.CompilerServices;

namespace MobileNetSharp.Kernels.Simd;

/// <summary>
/// How a kernel loads the data vector of a channel/column block: all lanes, or only the first n (the
/// tail block, masked so nothing past the tensor is read). A type parameter so the full-width main loop
/// carries no branch.
/// </summary>
internal unsafe interface ILanes
{
    static abstract TV Load<TS, TV>(float* p, int n) where TS : unmanaged, ISimd<TV> where TV : unmanaged;
    static abstract void Store<TS, TV>(float* p, TV v, int n) where TS : unmanaged, ISimd<TV> where TV : unmanaged;
}

internal readonly unsafe struct AllLanes : ILanes
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static TV Load<TS, TV>(float* p, int n) where TS : unmanaged, ISimd<TV> where TV : unmanaged => TS.Load(p);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Store<TS, TV>(float* p, TV v, int n) where TS : unmanaged, ISimd<TV> where TV : unmanaged => TS.Store(p, v);
}

internal readonly unsafe struct FirstLanes : ILanes
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static TV Load<TS, TV>(float* p, int n) where TS : unmanaged, ISimd<TV> where TV : unmanaged => TS.LoadPartial(p, n);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Store<TS, TV>(float* p, TV v, int n) where TS : unmanaged, ISimd<TV> where TV : unmanaged => TS.StorePartial(p, v, n);
}
