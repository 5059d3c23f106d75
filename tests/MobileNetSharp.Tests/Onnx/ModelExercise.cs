using MobileNetSharp.Graph;
using MobileNetSharp.Onnx;
using MobileNetSharp.Runtime;
using MobileNetSharp.Tensors;

namespace MobileNetSharp.Tests.Onnx;

/// <summary>
/// What `mnet run` does to a file, in-process: load, compile a session, run it once on zero inputs of the
/// declared shapes and element types. Refusals must be typed: <see cref="ModelFormatException"/> (the file),
/// <see cref="GraphException"/> (the graph cannot be compiled or run within the limits) or a plain
/// <see cref="ArgumentException"/> (documented argument checks). Any other exception is a bug and propagates.
/// </summary>
internal static class ModelExercise
{
    public enum Outcome { Refused, CompileRefused, TooLargeToRun, RunRefused, Ran }

    /// <summary>Inputs larger than this are not allocated; the session has still been compiled for them.</summary>
    public const long MaxInputElements = 1 << 22;

    public static readonly SessionOptions Session = new() { Threads = 1, MaxArenaBytes = 64 << 20 };

    public static bool Allowed(Exception e) => e is ModelFormatException or GraphException || e.GetType() == typeof(ArgumentException);

    public static (Outcome Outcome, Exception? Error) Run(byte[] bytes, OnnxImportOptions? options = null)
    {
        ModelGraph graph;
        try { graph = OnnxImporter.Load(bytes, options); }
        catch (ModelFormatException e) { return (Outcome.Refused, e); }

        InferenceSession session;
        try { session = new InferenceSession(graph, Session); }
        catch (Exception e) when (Allowed(e)) { return (Outcome.CompileRefused, e); }
        using (session)
        {
            if (session.Inputs.Sum(i => Shape.Size(i.Shape)) > MaxInputElements) return (Outcome.TooLargeToRun, null);
            var inputs = session.Inputs.Select(i => Tensor.Create(i.DataType, i.Shape)).ToArray();
            try { session.Run(inputs); }
            catch (Exception e) when (Allowed(e)) { return (Outcome.RunRefused, e); }
        }
        return (Outcome.Ran, null);
    }
}
