using MobileNetSharp.Runtime;
using MobileNetSharp.Tensors;

namespace MobileNetSharp.Imaging.Segmentation;

/// <summary>
/// A person mask at the photo's size: <see cref="Probabilities"/> row-major, Width·Height values in [0, 1] (1 = person).
/// </summary>
public sealed record SegmentationMask(int Width, int Height, float[] Probabilities)
{
    /// <summary>The share of pixels (0-1) whose probability exceeds <paramref name="threshold"/>.</summary>
    public double ForegroundFraction(float threshold = 0.5f) => Probabilities.Count(p => p > threshold) / (double)Probabilities.Length;

    /// <summary>The centroid (x, y in pixels) of the pixels over <paramref name="threshold"/>, or null when there are none.</summary>
    public (double X, double Y)? Centroid(float threshold = 0.5f)
    {
        double sx = 0, sy = 0;
        long n = 0;
        for (int y = 0; y < Height; y++)
            for (int x = 0; x < Width; x++)
                if (Probabilities[y * Width + x] > threshold) { sx += x; sy += y; n++; }
        return n == 0 ? null : (sx / n, sy / n);
    }

    /// <summary>Writes the mask as an 8-bit grey PNG (probability · 255, rounded).</summary>
    public void SavePng(string path) =>
        RgbImage.SaveGrayPng(path, Probabilities.Select(p => (byte)MathF.Round(Math.Clamp(p, 0f, 1f) * 255f)).ToArray(), Width, Height);
}

/// <summary>
/// MediaPipe's selfie segmentation (selfie_segmentation.tflite, 256x256, or selfie_segmentation_landscape.tflite, 144x256, from npm
/// @mediapipe/selfie_segmentation, Apache-2.0; a MobileNetV3-style encoder-decoder). As the module's graph
/// (mediapipe/modules/selfie_segmentation/selfie_segmentation_cpu.pbtxt) prepares it, the photo is stretched to the model's input
/// (keep_aspect_ratio: false) with values in [0, 1], float32 NHWC [1, H, W, 3]; the output [1, H, W, 1] is already a probability
/// (the model ends in a sigmoid; the graph's TensorsToSegmentationCalculator has activation NONE) and is resized bilinearly
/// (half-pixel centres) back to the photo's size.
/// </summary>
public sealed class SelfieSegmenter : IDisposable
{
    private readonly InferenceSession _session;
    private readonly int _w, _h;

    /// <summary>Loads the model; one whose input is not [1, H, W, 3] or whose output is not [1, H, W, 1] gives an <see cref="ArgumentException"/>.</summary>
    public SelfieSegmenter(string modelPath, SessionOptions? options = null)
    {
        _session = new InferenceSession(modelPath, options);
        var i = _session.Inputs.Count == 1 ? _session.Inputs[0].Shape : [];
        var o = _session.Outputs.Count == 1 ? _session.Outputs[0].Shape : [];
        if (i.Length != 4 || i[0] != 1 || i[3] != 3 || o.Length != 4 || o[0] != 1 || o[1] != i[1] || o[2] != i[2] || o[3] != 1)
        {
            string shapes = $"inputs {string.Join(", ", _session.Inputs.Select(t => Shape.Format(t.Shape)))}, outputs {string.Join(", ", _session.Outputs.Select(t => Shape.Format(t.Shape)))}";
            _session.Dispose();
            throw new ArgumentException($"'{modelPath}' is not a segmentation model with one RGB input [1,H,W,3] and one mask output [1,H,W,1] "
                + $"(such as selfie_segmentation.tflite from @mediapipe/selfie_segmentation): it has {shapes}.");
        }
        (_h, _w) = (i[1], i[2]);
    }

    /// <summary>The model's mask, at its own resolution (row-major, H·W probabilities).</summary>
    public (int Width, int Height, float[] Mask) RunModel(RgbImage image)
    {
        var y = _session.Run(image.Resize(_w, _h).ToNhwc(0f, 1f))[0];
        return (_w, _h, y.Floats);
    }

    /// <summary>The person mask of <paramref name="image"/> at the image's own size (the model's mask resized with <see cref="ResizeBilinear"/>).</summary>
    public SegmentationMask Segment(RgbImage image)
    {
        var (w, h, mask) = RunModel(image);
        return new SegmentationMask(image.Width, image.Height, ResizeBilinear(mask, w, h, image.Width, image.Height));
    }

    /// <summary>Bilinear resize of a one-channel map with half-pixel centres (source = (dst + 0.5)·in/out − 0.5, clamped at the edges).</summary>
    public static float[] ResizeBilinear(float[] src, int w, int h, int outW, int outH)
    {
        var dst = new float[outW * outH];
        var xs = new (int X0, int X1, float F)[outW];
        for (int x = 0; x < outW; x++)
        {
            float sx = Math.Clamp((x + 0.5f) * w / outW - 0.5f, 0, w - 1);
            int x0 = (int)sx;
            xs[x] = (x0, Math.Min(x0 + 1, w - 1), sx - x0);
        }
        for (int y = 0; y < outH; y++)
        {
            float sy = Math.Clamp((y + 0.5f) * h / outH - 0.5f, 0, h - 1);
            int y0 = (int)sy, y1 = Math.Min(y0 + 1, h - 1);
            float fy = sy - y0;
            for (int x = 0; x < outW; x++)
            {
                var (x0, x1, fx) = xs[x];
                float top = src[y0 * w + x0] + (src[y0 * w + x1] - src[y0 * w + x0]) * fx;
                float bottom = src[y1 * w + x0] + (src[y1 * w + x1] - src[y1 * w + x0]) * fx;
                dst[y * outW + x] = top + (bottom - top) * fy;
            }
        }
        return dst;
    }

    /// <summary>Releases the inference session.</summary>
    public void Dispose() => _session.Dispose();
}
