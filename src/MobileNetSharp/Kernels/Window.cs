namespace MobileNetSharp.Kernels;

/// <summary>Sliding-window arithmetic shared by every convolution and pooling geometry, 2-D and N-D.</summary>
public static class Window
{
    /// <summary>
    /// Output length along one axis (ONNX rule, floor or ceil mode), computed in 64 bits: sizes come from
    /// model files and an int overflow would yield a plausible wrong size. 0 when the window does not fit
    /// or is invalid (non-positive kernel, stride or dilation: the caller's validation names it); clamped
    /// to int.MaxValue, which shape validation then rejects as too large.
    /// </summary>
    public static int OutputSize(int size, int padBegin, int padEnd, int kernel, int stride, int dilation, bool ceilMode = false)
    {
        if (kernel < 1 || stride < 1 || dilation < 1) return 0;
        long span = (long)size + padBegin + padEnd - (long)dilation * (kernel - 1) - 1;
        if (span < 0) return 0;
        long o = ceilMode ? (span + stride - 1) / stride + 1 : span / stride + 1;
        // In ceil mode the last window must still start inside the input or its begin padding.
        if (ceilMode && (o - 1) * stride >= (long)size + padBegin) o--;
        return (int)Math.Min(o, int.MaxValue);
    }
}
