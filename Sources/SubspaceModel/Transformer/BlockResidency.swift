/// Which pass is using a block.
public enum BlockPhase: Sendable { case forward, backward }

/// Decides where a block's parameters and gradients live while the model uses it — the hook ZeRO uses.
///
/// The model calls `parameters(block:phase:)` (and in backward `gradients(block:)`) before it uses a
/// block and `finished(block:phase:)` when it is done: after a backward `finished`, that block's
/// gradients are complete (so their reduction can start). Blocks are `ParameterLayout.blockRanges`:
/// 0 the embeddings, 1…L the layers, L+1 the tail. Pointers address the block's first element; the
/// tensors inside are at their layout offsets minus the block's start. The embeddings block is acquired
/// first and finished last in each pass (a tied output head uses it at the end of forward and the start
/// of backward).
public protocol BlockResidency: AnyObject {
    func parameters(block: Int, phase: BlockPhase) -> UnsafeMutablePointer<Float>
    func gradients(block: Int) -> UnsafeMutablePointer<Float>
    func finished(block: Int, phase: BlockPhase)
}
