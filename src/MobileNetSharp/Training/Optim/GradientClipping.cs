using System.Numerics.Tensors;

namespace MobileNetSharp.Training;

public static class GradientClipping
{
    /// <summary>
    /// Scales every gradient by min(1, maxNorm/(norm + 1e-6)), norm being the global L2 norm of all gradients
    /// together (so only when it exceeds about <paramref name="maxNorm"/>), as torch.nn.utils.clip_grad_norm_ (norm_type 2) does, and returns the norm before
    /// clipping. The sum of squares is accumulated in double across parameters, and within a parameter whose float
    /// sum overflows (PyTorch uses float throughout; the two agree to float rounding). A non-finite norm (NaN or ∞ in a gradient) is returned and the gradients are left
    /// as they are, where PyTorch would multiply them by NaN or 0: the caller should skip that step.
    /// </summary>
    public static float ClipByGlobalNorm(IReadOnlyList<Parameter> parameters, float maxNorm)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        if (!(maxNorm > 0) || float.IsPositiveInfinity(maxNorm)) throw new ArgumentOutOfRangeException(nameof(maxNorm), maxNorm, "maxNorm must be finite and > 0.");
        double sum = 0;
        foreach (var p in parameters)
        {
            float part = TensorPrimitives.SumOfSquares(p.Grad);
            if (float.IsPositiveInfinity(part)) // large but finite values whose squares overflow float: redo in double
            {
                double wide = 0;
                foreach (float g in p.Grad) wide += (double)g * g;
                sum += wide;
            }
            else sum += part;
        }
        float norm = (float)Math.Sqrt(sum);
        if (!float.IsFinite(norm)) return norm;
        float scale = maxNorm / (norm + 1e-6f);
        if (scale < 1f)
            foreach (var p in parameters) TensorPrimitives.Multiply(p.Grad, scale, p.Grad);
        return norm;
    }
}
