using MobileNetSharp.Kernels;

namespace MobileNetSharp.Tests.Kernels;

public class IsaTests
{
    [Theory]
    [InlineData(IsaLevel.Vector512, "v256", IsaLevel.Vector256)]
    [InlineData(IsaLevel.Vector512, "SCALAR", IsaLevel.Scalar)]
    [InlineData(IsaLevel.Vector256, "v512", IsaLevel.Vector256)]   // a cap never raises the level
    [InlineData(IsaLevel.Vector128, null, IsaLevel.Vector128)]
    [InlineData(IsaLevel.Vector512, "bogus", IsaLevel.Vector512)]
    public void EnvironmentSettingCapsTheHardwareLevel(IsaLevel hardware, string? setting, IsaLevel expected) =>
        Assert.Equal(expected, Isa.Cap(hardware, setting));

    [Fact]
    public void ResolveDefaultsToBestAndClampsToHardware()
    {
        Assert.Equal(Isa.Best, Isa.Resolve(null));
        Assert.True(Isa.Best <= Isa.Hardware);
        Assert.Equal(Isa.Hardware, Isa.Resolve(IsaLevel.Vector512));
        Assert.Equal(IsaLevel.Scalar, Isa.Resolve(IsaLevel.Scalar));
        Assert.Contains(IsaLevel.Scalar, Isa.Supported);
        Assert.Equal(Isa.Hardware, Isa.Supported[^1]);
    }
}
