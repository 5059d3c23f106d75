using MobileNetSharp.Tensors;

namespace MobileNetSharp.TfLite.Import;

/// <summary>Rearranges constants at load (weights OHWI → OIHW and the like); runs once per weight, so plain loops.</summary>
internal static class Layout
{
    /// <summary>Output axis i is input axis perm[i]; any element type.</summary>
    public static Tensor Permute(Tensor t, int[] perm)
    {
        int rank = t.Rank;
        var shape = perm.Select(a => t.Shape[a]).ToArray();
        var src = t.Data;
        var dst = Array.CreateInstance(src.GetType().GetElementType()!, src.Length);
        var inStrides = new long[rank];
        for (int i = rank - 1, s = 1; i >= 0; s *= t.Shape[i], i--) inStrides[i] = s;
        var index = new int[rank];
        for (int o = 0; o < src.Length; o++)
        {
            long from = 0;
            for (int i = 0; i < rank; i++) from += index[i] * inStrides[perm[i]];
            if (src is float[] f) ((float[])dst)[o] = f[from];
            else Array.Copy(src, from, dst, o, 1);
            for (int i = rank - 1; i >= 0 && ++index[i] == shape[i]; i--) index[i] = 0;
        }
        return new Tensor(t.DataType, shape, dst);
    }
}
