namespace MobileNetSharp.Graph;

/// <summary>How Pad fills the border (ONNX modes). Shared by the graph ops and the kernels.</summary>
public enum PadMode { Constant, Reflect, Edge, Wrap }
