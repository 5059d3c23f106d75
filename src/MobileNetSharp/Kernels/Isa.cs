using System.Runtime.Intrinsics;

namespace MobileNetSharp.Kernels;

/// <summary>The SIMD width a kernel runs at. Vector128 is SSE on x86 and NEON on Arm.</summary>
public enum IsaLevel { Scalar, Vector128, Vector256, Vector512 }

/// <summary>
/// Chooses the ISA once per process (the MLAS idea: dispatch decided at start-up, not per call).
/// <see cref="Best"/> is the widest hardware-accelerated width, capped by the environment variable
/// MNET_ISA=scalar|v128|v256|v512 so a whole run can be pinned to a narrower path.
/// </summary>
public static class Isa
{
    /// <summary>The widest level the hardware accelerates, ignoring MNET_ISA.</summary>
    public static IsaLevel Hardware { get; } =
        Vector512.IsHardwareAccelerated ? IsaLevel.Vector512
        : Vector256.IsHardwareAccelerated ? IsaLevel.Vector256
        : Vector128.IsHardwareAccelerated ? IsaLevel.Vector128
        : IsaLevel.Scalar;

    /// <summary>The level operators use when none is given: <see cref="Hardware"/> capped by MNET_ISA.</summary>
    public static IsaLevel Best { get; } = Cap(Hardware, Environment.GetEnvironmentVariable("MNET_ISA"));

    /// <summary>Every level this machine runs accelerated (Scalar always), narrowest first; what the tests sweep.</summary>
    public static IReadOnlyList<IsaLevel> Supported { get; } =
        Enum.GetValues<IsaLevel>().Where(l => l <= Hardware).ToArray();

    /// <summary>null means <see cref="Best"/>; an explicit level wider than the hardware is clamped to it
    /// (it would still be correct, only emulated in software and slow).</summary>
    public static IsaLevel Resolve(IsaLevel? requested) =>
        requested is { } level ? (level > Hardware ? Hardware : level) : Best;

    internal static IsaLevel Cap(IsaLevel hardware, string? setting)
    {
        IsaLevel? cap = setting?.Trim().ToLowerInvariant() switch
        {
            "scalar" => IsaLevel.Scalar,
            "v128" => IsaLevel.Vector128,
            "v256" => IsaLevel.Vector256,
            "v512" => IsaLevel.Vector512,
            _ => null,
        };
        return cap is { } c && c < hardware ? c : hardware;
    }

    /// <summary>Floats per vector at a level.</summary>
    public static int Width(IsaLevel level) => level switch
    {
        IsaLevel.Vector512 => 16,
        IsaLevel.Vector256 => 8,
        IsaLevel.Vector128 => 4,
        _ => 1,
    };
}
