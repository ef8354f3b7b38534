/// Sees the input rows of every linear GEMM group during `Transformer.forward` (activation capture):
/// for each layer and `LinearGroup`, the N = batch·sequence rows the group's modules multiply, before the
/// product. Modules of one group share their input (q, k, v; gate, up). The rows belong to the forward
/// pass and are only valid during the call; an observer copies or reduces what it needs.
///
/// Calibration statistics (input covariances) and adapter verification are built on this; the
/// transformer calls it only when one is set, so the forward pass costs nothing extra otherwise.
public protocol LinearInputObserver: AnyObject {
    /// `rows` is [batch · sequence, width] with row stride `stride` (≥ width); row n belongs to
    /// sequence n / `sequence` of the batch.
    func observe(layer: Int, group: LinearGroup, rows: UnsafePointer<Float>, stride: Int, width: Int,
                 batch: Int, sequence: Int)
}
