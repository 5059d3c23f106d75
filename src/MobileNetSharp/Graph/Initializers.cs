namespace MobileNetSharp.Graph;

/// <summary>Seeded weight initializers shared by the builders, so untrained models are reproducible.</summary>
public static class Initializers
{
    /// <summary>Normal(0, std) samples by Box-Muller; 1 - u keeps the log argument in (0, 1].</summary>
    public static float[] Normal(Random rng, long count, float std)
    {
        var d = new float[count];
        for (long i = 0; i < count; i++)
        {
            double u1 = 1.0 - rng.NextDouble(), u2 = rng.NextDouble();
            d[i] = (float)(std * Math.Sqrt(-2.0 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2));
        }
        return d;
    }

    /// <summary>He (Kaiming) normal for ReLU-family networks: std = sqrt(2 / fan_in).</summary>
    public static float[] HeNormal(Random rng, long count, int fanIn) => Normal(rng, count, MathF.Sqrt(2f / fanIn));

    public static float[] Uniform(Random rng, long count, float lo, float hi)
    {
        var d = new float[count];
        for (long i = 0; i < count; i++) d[i] = lo + (hi - lo) * rng.NextSingle();
        return d;
    }
}
