namespace MobileNetSharp.Training.Data;

/// <summary>
/// Training-time augmentation of one image held as floats [C, H, W], applied in this order:
/// random crop with zero padding (shift by up to <see cref="CropPadding"/> pixels each way, as
/// torchvision's RandomCrop(size, padding)), horizontal flip with <see cref="FlipProbability"/>, and
/// random erasing (Zhong et al. 2017, torchvision's RandomErasing with value 0) with
/// <see cref="EraseProbability"/>: a rectangle of area fraction in [EraseMinArea, EraseMaxArea] and
/// log-uniform aspect ratio in [EraseMinAspect, 1/EraseMinAspect], up to 10 tries to fit.
/// Every random choice comes from the <see cref="SplitMix64"/> passed in, so a seed fixes the result.
/// </summary>
public sealed record Augmentation(int CropPadding = 0, double FlipProbability = 0, double EraseProbability = 0,
    double EraseMinArea = 0.02, double EraseMaxArea = 0.33, double EraseMinAspect = 0.3)
{
    public static Augmentation None { get; } = new();

    /// <summary>What the Fashion-MNIST recipe uses: crop with 2 pixels of padding, flips, erasing 1 time in 4.</summary>
    public static Augmentation Standard { get; } = new(CropPadding: 2, FlipProbability: 0.5, EraseProbability: 0.25);

    public bool IsIdentity => CropPadding == 0 && FlipProbability <= 0 && EraseProbability <= 0;

    internal void Validate()
    {
        if (CropPadding < 0 || CropPadding > 1024) throw new ArgumentException($"crop padding must be 0..1024, got {CropPadding}.");
        if (!(FlipProbability >= 0 && FlipProbability <= 1) || !(EraseProbability >= 0 && EraseProbability <= 1))
            throw new ArgumentException("flip and erase probabilities must be in [0, 1].");
        if (!(EraseMinArea > 0 && EraseMinArea <= EraseMaxArea && EraseMaxArea <= 1) || !(EraseMinAspect > 0 && EraseMinAspect <= 1))
            throw new ArgumentException("erase area must satisfy 0 < min <= max <= 1 and the aspect 0 < min <= 1.");
    }

    /// <summary>Augments <paramref name="image"/> ([c, h, w]) in place; <paramref name="scratch"/> holds at least c·h·w floats.</summary>
    public void Apply(Span<float> image, int c, int h, int w, ref SplitMix64 rng, Span<float> scratch)
    {
        int plane = h * w;
        if (image.Length < c * plane || scratch.Length < c * plane) throw new ArgumentException("image or scratch buffer too small.");
        if (CropPadding > 0)
        {
            int dy = rng.Next(-CropPadding, CropPadding), dx = rng.Next(-CropPadding, CropPadding);
            if (dy != 0 || dx != 0)
            {
                // out[y, x] = in[y + dy, x + dx], zero outside: padding by p then cropping at (p + dy, p + dx).
                image[..(c * plane)].CopyTo(scratch);
                for (int ch = 0; ch < c; ch++)
                    for (int y = 0; y < h; y++)
                    {
                        var row = image.Slice(ch * plane + y * w, w);
                        int sy = y + dy;
                        if ((uint)sy >= (uint)h) { row.Clear(); continue; }
                        int x0 = Math.Max(0, -dx), x1 = Math.Min(w, w - dx);
                        row[..Math.Min(x0, w)].Clear();
                        if (x1 > x0) scratch.Slice(ch * plane + sy * w + x0 + dx, x1 - x0).CopyTo(row[x0..x1]);
                        if (x1 < w) row[Math.Max(x1, 0)..].Clear();
                    }
            }
        }
        if (FlipProbability > 0 && rng.NextDouble() < FlipProbability)
            for (int r = 0; r < c * h; r++) image.Slice(r * w, w).Reverse();
        if (EraseProbability > 0 && rng.NextDouble() < EraseProbability)
        {
            double logMin = Math.Log(EraseMinAspect), logMax = -logMin;
            for (int attempt = 0; attempt < 10; attempt++)
            {
                double area = plane * (EraseMinArea + (EraseMaxArea - EraseMinArea) * rng.NextDouble());
                double aspect = Math.Exp(logMin + (logMax - logMin) * rng.NextDouble());
                int eh = (int)Math.Round(Math.Sqrt(area * aspect)), ew = (int)Math.Round(Math.Sqrt(area / aspect));
                if (eh < 1 || ew < 1 || eh >= h || ew >= w) continue;
                int top = rng.Next(h - eh + 1), left = rng.Next(w - ew + 1);
                for (int ch = 0; ch < c; ch++)
                    for (int y = top; y < top + eh; y++) image.Slice(ch * plane + y * w + left, ew).Clear();
                break;
            }
        }
    }
}
