using MobileNetSharp.Tensors;

namespace MobileNetSharp.Tests.Tensors;

public class TensorTests
{
    [Fact]
    public void Int8ValuesReadAsSignedIntegers()
    {
        var t = new Tensor(DataType.Int8, [3], new sbyte[] { -1, 0, 127 });
        Assert.Equal([-1L, 0L, 127L], t.ToInt64Array());
        var u = new Tensor(DataType.UInt8, [2], new byte[] { 255, 1 });
        Assert.Equal([255L, 1L], u.ToInt64Array());
    }

    [Fact]
    public void ShapeAndDataMustAgree()
    {
        Assert.Throws<ArgumentException>(() => new Tensor(new float[5], 2, 3));
        Assert.Throws<ArgumentException>(() => new Tensor(DataType.Int64, [2], new float[2]));
        Assert.Throws<ArgumentException>(() => Tensor.Zeros(-1, 3));
        Assert.Throws<ArgumentException>(() => Tensor.Zeros(1 << 20, 1 << 20));
    }
}
