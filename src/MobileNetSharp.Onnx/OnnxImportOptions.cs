using MobileNetSharp.Tensors;

namespace MobileNetSharp.Onnx;

/// <summary>How <see cref="OnnxImporter"/> resolves what a file leaves open.</summary>
public sealed class OnnxImportOptions
{
    /// <summary>
    /// Values for symbolic dimensions (dim_param) of the graph inputs, by name, e.g. { ["height"] = 224 }
    /// (`mnet --dim height=224`). Each name must be a dim_param of some input. The sizes are fixed in the
    /// imported graph, and an exporter writes them as sizes.
    /// </summary>
    public Dictionary<string, int> Dimensions { get; init; } = [];

    /// <summary>
    /// Concrete shapes for graph inputs, by name (`mnet --shape x=1x3x224x224`): fills symbolic dimensions the
    /// way a runtime does when it sees the first input. The rank and the sizes the file fixes must agree, and
    /// so must sizes given for the same dimension in <see cref="Dimensions"/>. The shape is fixed in the graph.
    /// </summary>
    public Dictionary<string, int[]> InputShapes { get; init; } = [];

    /// <summary>
    /// The size used for a symbolic or unknown first (batch) dimension of a graph input that neither
    /// <see cref="Dimensions"/> nor <see cref="InputShapes"/> gives. That dimension keeps its name in
    /// <see cref="Graph.Value.DimParams"/> (on the input and on the outputs that scale with it), so the
    /// exporter writes it symbolic again, when the graph works at any batch as imported: no Shape or Size
    /// read it at load time and every value's shape scales with it.
    /// </summary>
    public int DefaultBatch { get; init; } = 1;

    /// <summary>
    /// Graph inputs bound to fixed values at load time ("frozen"), by input name. Operators whose
    /// parameters ONNX passes as inputs (shapes, axes, pads, bounds) need them constant here.
    /// </summary>
    public Dictionary<string, Tensor> Constants { get; init; } = [];

    /// <summary>Folder that external-data paths are relative to; defaults to the model file's folder.</summary>
    public string? ExternalDataDirectory { get; init; }

    /// <summary>
    /// Upper bound on the elements the importer computes at load time (constant folding, ConstantOfShape,
    /// Range, ...), summed over the whole model: many small folded tensors count like one large one.
    /// </summary>
    public long MaxFoldedElements { get; init; } = 1L << 26;

    /// <summary>
    /// Upper bound on the bytes read from external-data files, summed over the whole model (tensors that name
    /// the same bytes are read once and count once). Default 4 GiB.
    /// </summary>
    public long MaxExternalBytes { get; init; } = 4L << 30;
}
