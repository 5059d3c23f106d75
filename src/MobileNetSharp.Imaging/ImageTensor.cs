using MobileNetSharp.Graph;
using MobileNetSharp.Tensors;
using SkiaSharp;

namespace MobileNetSharp.Imaging;

/// <summary>An RGB image decoded into memory (8 bits per channel), with its size.</summary>
public sealed class RgbImage
{
    public int Width { get; }
    public int Height { get; }
    /// <summary>Row-major RGB bytes, 3 per pixel.</summary>
    public byte[] Pixels { get; }

    public RgbImage(int width, int height, byte[] pixels)
    {
        if (width < 1 || height < 1 || pixels.Length != (long)width * height * 3) throw new ArgumentException($"{pixels.Length} bytes do not hold a {width}x{height} RGB image.");
        Width = width; Height = height; Pixels = pixels;
    }

    /// <summary>The largest image decoded, in pixels: 64 megapixels (an 8000 x 8000 photo; 256 MB as RGBA). Larger headers are refused before decoding.</summary>
    public const long MaxPixels = 64_000_000;

    /// <summary>
    /// Decodes PNG, JPEG, WebP, GIF (first frame) or BMP; a file that is not an image, or whose header claims more
    /// than <see cref="MaxPixels"/>, gives an <see cref="ArgumentException"/>. Transparent pixels are composited on black.
    /// </summary>
    public static RgbImage Load(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"No such image file: {path}", path);
        try
        {
            using var bitmap = DecodeBitmap(path, allowIncomplete: true);
            return FromBitmap(bitmap);
        }
        catch (InvalidDataException e)
        {
            throw new ArgumentException(e.Message, nameof(path), e);
        }
    }

    /// <summary>
    /// Decodes a file into premultiplied RGBA (so RGB is the image over black), reading the header first and refusing
    /// more than <paramref name="maxPixels"/>. Errors are <see cref="InvalidDataException"/> naming the file:
    /// not an image SkiaSharp recognizes, too large, or failing to decode (a truncated file too unless <paramref name="allowIncomplete"/>).
    /// </summary>
    internal static SKBitmap DecodeBitmap(string path, bool allowIncomplete, long maxPixels = MaxPixels)
    {
        using var codec = SKCodec.Create(path, out var opened)
            ?? throw new InvalidDataException($"{path}: not an image SkiaSharp can decode ({opened}).");
        var info = codec.Info;
        if (info.Width < 1 || info.Height < 1) throw new InvalidDataException($"{path}: the header gives an empty {info.Width}x{info.Height} image.");
        if ((long)info.Width * info.Height > maxPixels)
            throw new InvalidDataException($"{path}: {info.Width}x{info.Height} image exceeds the limit of {maxPixels:N0} pixels.");
        var bitmap = new SKBitmap(new SKImageInfo(info.Width, info.Height, SKColorType.Rgba8888, SKAlphaType.Premul));
        var result = codec.GetPixels(bitmap.Info, bitmap.GetPixels());
        if (result == SKCodecResult.Success || allowIncomplete && result == SKCodecResult.IncompleteInput) return bitmap;
        bitmap.Dispose();
        throw new InvalidDataException($"{path}: the image does not decode ({result}{(result == SKCodecResult.IncompleteInput ? ": truncated" : "")}).");
    }

    /// <summary>
    /// Scales <paramref name="source"/> so its shorter side is <paramref name="size"/> (bilinear with mipmaps, so large
    /// reductions average rather than alias) and keeps the centred <paramref name="size"/> x <paramref name="size"/> square,
    /// as torchvision's Resize(size) then CenterCrop(size): the aspect ratio is kept and the edges of the longer side are lost.
    /// </summary>
    internal static SKBitmap ResizeCenterCrop(SKBitmap source, int size)
    {
        float scale = (float)size / Math.Min(source.Width, source.Height);
        float w = source.Width * scale, h = source.Height * scale;
        float left = (size - w) / 2, top = (size - h) / 2;
        var dst = new SKBitmap(size, size, SKColorType.Rgba8888, SKAlphaType.Premul);
        using var canvas = new SKCanvas(dst);
        canvas.Clear(SKColors.Black);
        using var image = SKImage.FromBitmap(source);
        canvas.DrawImage(image, new SKRect(left, top, left + w, top + h), new SKSamplingOptions(SKFilterMode.Linear, SKMipmapMode.Linear));
        return dst;
    }

    /// <summary>The centred square of the image scaled to <paramref name="size"/> x <paramref name="size"/> (see <see cref="ResizeCenterCrop(SKBitmap, int)"/>).</summary>
    public RgbImage ResizeCenterCrop(int size)
    {
        if (size < 1 || size > 16384) throw new ArgumentOutOfRangeException(nameof(size), size, "size must be 1..16384.");
        using var src = ToBitmap();
        using var dst = ResizeCenterCrop(src, size);
        return FromBitmap(dst);
    }

    internal static RgbImage FromBitmap(SKBitmap bitmap)
    {
        using var rgba = bitmap.ColorType == SKColorType.Rgba8888 && bitmap.AlphaType != SKAlphaType.Unpremul ? null : new SKBitmap(bitmap.Width, bitmap.Height, SKColorType.Rgba8888, SKAlphaType.Premul);
        var source = bitmap;
        if (rgba is not null)
        {
            using var canvas = new SKCanvas(rgba);
            canvas.Clear(SKColors.Black);
            canvas.DrawBitmap(bitmap, 0, 0);
            source = rgba;
        }
        var bytes = source.GetPixelSpan();
        var rgb = new byte[source.Width * source.Height * 3];
        for (int i = 0, j = 0; j < rgb.Length; i += 4, j += 3)
        {
            rgb[j] = bytes[i]; rgb[j + 1] = bytes[i + 1]; rgb[j + 2] = bytes[i + 2];
        }
        return new RgbImage(source.Width, source.Height, rgb);
    }

    private SKBitmap ToBitmap()
    {
        var b = new SKBitmap(Width, Height, SKColorType.Rgba8888, SKAlphaType.Opaque);
        var px = new byte[Width * Height * 4];
        for (int i = 0, j = 0; j < Pixels.Length; i += 4, j += 3)
        {
            px[i] = Pixels[j]; px[i + 1] = Pixels[j + 1]; px[i + 2] = Pixels[j + 2]; px[i + 3] = 255;
        }
        System.Runtime.InteropServices.Marshal.Copy(px, 0, b.GetPixels(), px.Length);
        return b;
    }

    /// <summary>
    /// Fits the image into a <paramref name="size"/> x <paramref name="size"/> square keeping its aspect ratio (bilinear with mipmaps),
    /// centred on black, as MediaPipe's detectors letterbox their input. Returns the square and where the image lies in it (0-1).
    /// </summary>
    public (RgbImage Square, float Left, float Top, float Width, float Height) Letterbox(int size)
    {
        float scale = Math.Min((float)size / Width, (float)size / Height);
        int w = Math.Max(1, (int)MathF.Round(Width * scale)), h = Math.Max(1, (int)MathF.Round(Height * scale));
        int left = (size - w) / 2, top = (size - h) / 2;
        using var src = ToBitmap();
        using var dst = new SKBitmap(size, size, SKColorType.Rgba8888, SKAlphaType.Premul);
        using (var canvas = new SKCanvas(dst))
        {
            canvas.Clear(SKColors.Black);
            using var image = SKImage.FromBitmap(src);
            canvas.DrawImage(image, new SKRect(left, top, left + w, top + h), new SKSamplingOptions(SKFilterMode.Linear, SKMipmapMode.Linear));
        }
        return (FromBitmap(dst), (float)left / size, (float)top / size, (float)w / size, (float)h / size);
    }

    /// <summary>
    /// Stretches the image to <paramref name="width"/> x <paramref name="height"/> without keeping its aspect ratio (bilinear with
    /// mipmaps), as MediaPipe's ImageToTensorCalculator does with keep_aspect_ratio: false (the SSD detector, selfie segmentation).
    /// </summary>
    public RgbImage Resize(int width, int height)
    {
        if (width < 1 || height < 1) throw new ArgumentException($"Cannot resize to {width}x{height}.");
        using var src = ToBitmap();
        using var dst = new SKBitmap(width, height, SKColorType.Rgba8888, SKAlphaType.Premul);
        using (var canvas = new SKCanvas(dst))
        {
            canvas.Clear(SKColors.Black);
            using var image = SKImage.FromBitmap(src);
            canvas.DrawImage(image, new SKRect(0, 0, width, height), new SKSamplingOptions(SKFilterMode.Linear, SKMipmapMode.Linear));
        }
        return FromBitmap(dst);
    }

    /// <summary>Writes an 8-bit grey-scale PNG from row-major <paramref name="pixels"/> (one byte per pixel, 0 black, 255 white).</summary>
    public static void SaveGrayPng(string path, byte[] pixels, int width, int height)
    {
        if (width < 1 || height < 1 || pixels.Length != (long)width * height) throw new ArgumentException($"{pixels.Length} bytes do not hold a {width}x{height} grey image.");
        using var bitmap = new SKBitmap(width, height, SKColorType.Gray8, SKAlphaType.Opaque);
        nint dst = bitmap.GetPixels();
        for (int y = 0; y < height; y++) System.Runtime.InteropServices.Marshal.Copy(pixels, y * width, dst + y * bitmap.RowBytes, width);
        using var data = bitmap.Encode(SKEncodedImageFormat.Png, 100);
        using var file = File.Create(path);
        data.SaveTo(file);
    }

    /// <summary>The image as float32 NHWC [1, H, W, 3], each channel mapped from [0, 255] to [lo, hi].</summary>
    public Tensor ToNhwc(float lo = -1f, float hi = 1f)
    {
        var data = new float[Pixels.Length];
        float k = (hi - lo) / 255f;
        for (int i = 0; i < data.Length; i++) data[i] = lo + Pixels[i] * k;
        return new Tensor(data, 1, Height, Width, 3);
    }

    /// <summary>The image as float32 NCHW [1, 3, H, W], each channel mapped from [0, 255] to [lo, hi].</summary>
    public Tensor ToNchw(float lo = 0f, float hi = 1f)
    {
        var data = new float[Pixels.Length];
        float k = (hi - lo) / 255f;
        int plane = Width * Height;
        for (int p = 0; p < plane; p++)
            for (int c = 0; c < 3; c++) data[c * plane + p] = lo + Pixels[p * 3 + c] * k;
        return new Tensor(data, 1, 3, Height, Width);
    }

    /// <summary>Writes a PNG with the given boxes (pixels: x1, y1, x2, y2) drawn in red.</summary>
    public void SavePngWithBoxes(string path, IEnumerable<(float X1, float Y1, float X2, float Y2)> boxes)
    {
        using var bitmap = ToBitmap();
        using (var canvas = new SKCanvas(bitmap))
        using (var paint = new SKPaint { Color = SKColors.Red, Style = SKPaintStyle.Stroke, StrokeWidth = Math.Max(2, Width / 200f), IsAntialias = true })
            foreach (var b in boxes) canvas.DrawRect(new SKRect(b.X1, b.Y1, b.X2, b.Y2), paint);
        using var data = bitmap.Encode(SKEncodedImageFormat.Png, 100);
        using var file = File.Create(path);
        data.SaveTo(file);
    }
}
