namespace MobileNetSharp.Models;

/// <summary>Channel rounding rules of the reference implementations.</summary>
public static class Channels
{
    /// <summary>
    /// Rounds to the nearest multiple of <paramref name="divisor"/>, never below it and never more than
    /// 10% below the unrounded value (TensorFlow's and torchvision's _make_divisible).
    /// </summary>
    public static int MakeDivisible(double value, int divisor = 8)
    {
        int rounded = Math.Max(divisor, (int)(value + divisor / 2.0) / divisor * divisor);
        if (rounded < 0.9 * value) rounded += divisor;
        return rounded;
    }

    /// <summary>MobileNetV1's rule: plain truncation, int(c * alpha).</summary>
    public static int Truncate(int channels, float width) => Math.Max(1, (int)(channels * width));
}
