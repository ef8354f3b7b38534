/// Which pass is using a block.
public enum BlockPhase: Sendable { case forward, backward }

/// Decides where a block's parameters and gradients live while the model uses it — the hook ZeRO uses.
///
/// The model calls `parameters(block:phase:)` (and in backward `gradients(block:)`) before it uses a
/// block and `finished(block:phase:)` when it is done: after a backward `finished`, that block's
/// gradients are complete (so their reduction can start); a block used in backward for its parameters
/// only (the head's slices of a tied embedding, whose gradient is made at the end) is finished with phase
/// `.forward`. Blocks are `ParameterLayout.blockRanges`: the token embedding's vocabulary slices, GPT-2's
/// position embedding, the layers, the final norm, an untied head's slices. Pointers address the
/// block's first element; the tensors inside are at their layout offsets minus the block's start. At
/// most one vocabulary slice, one layer and one small block (position embedding or final norm) are in
/// use at a time; backward finishes blocks in reverse layout order (an untied head's slices last to
/// first, the final norm, the layers, the position embedding, the token slices last to first), each once.
public protocol BlockResidency: AnyObject {
    func parameters(block: Int, phase: BlockPhase) -> UnsafeMutablePointer<Float>
    func gradients(block: Int) -> UnsafeMutablePointer<Float>
    func finished(block: Int, phase: BlockPhase)
}
