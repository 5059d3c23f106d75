// TEMPORARY: replaced by the real ImageFolder on merge of branch optim.
namespace MobileNetSharp.Imaging;
public static class ImageFolder
{
    public static MobileNetSharp.Training.Data.ImageDataset Load(string root, int channels, int resolution, IProgress<int>? progress = null, bool skipBad = false, Action<string, string>? onBad = null)
        => throw new NotImplementedException();
}
