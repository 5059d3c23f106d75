namespace MobileNetSharp.Graph;

/// <summary>Element-wise binary operators (NumPy broadcasting). Shared by the graph ops and the kernels.</summary>
public enum BinaryKind { Add, Sub, Mul, Div, Max, Min, Pow }
