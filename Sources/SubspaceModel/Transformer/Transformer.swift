import Foundation
import SubspaceCore

/// A GPT-style transformer (gpt2, llama or qwen2 family) with a hand-written forward and backward pass.
///
/// Parameters live in one flat buffer laid out by `ParameterLayout`; gradients use the same layout.
/// `forward` keeps what `backward` needs in buffers sized for the last (B, T) and reused while the shape
/// stays the same. `backward` *accumulates* into `gradients`; call `zeroGradients()` once per step.
/// Frozen tensors get no weight gradient (their GEMM is skipped) and stay zero in `gradients`.
public final class Transformer: @unchecked Sendable {
    public let config: ModelConfig
    public let layout: ParameterLayout
    /// The flat parameter buffer (layout order), allocated on first use. Under ZeRO-3 the engine holds
    /// the parameters in shards and the model has none (`releaseParameterStorage()`): asking for the
    /// buffer then is a programming error, not a silent full-size allocation.
    ///
    /// Whoever asks for the buffer may write it, so asking counts as a change of the parameters
    /// (`parametersChanged()`): bf16 copies are remade from it at their next use. A pointer kept across
    /// passes and written later needs its own `parametersChanged()` after the write.
    public var parameterStorage: TensorStorage {
        parametersChanged()
        return flatParameters
    }
    /// `parameterStorage` without counting as a change: for reading, or for saying where a block is.
    var flatParameters: TensorStorage {
        if let storage = allocatedParameters { return storage }
        precondition(!parametersSharded, residency == nil
            ? "the parameters of this model live in its ZeRO-3 engine, which is gone: keep the engine (or the Trainer) alive while the model is used"
            : "the full parameter buffer of a model whose parameters are sharded (ZeRO-3) was asked for")
        let storage = TensorStorage(capacity: layout.totalCount)
        allocatedParameters = storage
        return storage
    }
    /// The flat parameter buffer if it exists (nil before first use and once sharded).
    public private(set) var allocatedParameters: TensorStorage?
    /// Set by `releaseParameterStorage()`: a residency holds the parameters; the model never has them whole.
    public private(set) var parametersSharded = false
    /// The flat gradient buffer, allocated with the first backward pass.
    public internal(set) var gradientStorage: TensorStorage?
    /// Tensors that receive no gradient.
    public var frozen: Set<TensorRole> = []
    /// LoRA adapters applied on top of the base weights, if any.
    public var adapters: LoRAAdapters?
    /// Sees every linear group's input rows during forward (activation capture), when set.
    public var linearInputObserver: (any LinearInputObserver)?
    /// Per-op timing, when set.
    public var profiler: Profiler?
    /// Dropout probability on the embedding output and on each attention and MLP branch before it joins
    /// the residual stream (GPT-2's embd_pdrop and resid_pdrop); applied only while `training`.
    public var dropout: Float = 0
    public var training = false
    /// Where dropout masks come from; reseed per step (`reseedDropout`) so a resumed run draws the same.
    /// Each forward pass takes its own stream from it (`Dropout`: masks are a function of the pass's
    /// stream, the site and the row, so a checkpoint recomputation draws the same masks).
    public var dropoutRNG = RandomStream(seed: 0, stream: 0xD1)
    var dropping: Bool { training && dropout > 0 }

    public func reseedDropout(seed: UInt64, step: Int) {
        dropoutRNG = RandomStream(seed: seed, stream: 0xD1).split(UInt64(step))
    }

    /// `none`: forward keeps every layer's activations; `layers`: only each layer's input, and backward
    /// recomputes the layer (the same gradients, bit for bit, for about one more forward pass of compute),
    /// with the output head and the loss run a chunk of rows at a time. A forward with targets then keeps
    /// no logits (`logits` needs a forward without targets).
    public var activationCheckpointing: ActivationCheckpointing = .none
    /// Rows of the output head per chunk; nil: enough for about 16M logits (at least 256 rows). A test hook.
    var headChunkRows: Int?
    /// Head gates ξ [L, H] (layer-major) multiplying each head's attention output before the output
    /// projection; nil: all 1, at no cost. Must not change between a forward and its backward.
    /// See Transformer+HeadGates.swift.
    public var headGates: [Float]? {
        didSet { precondition(headGates.map { $0.count == config.layerCount * config.headCount } ?? true, "head gates must hold L·H values") }
    }
    /// When set, backward writes ∂L/∂ξ per batch row into `gateGradients`.
    public var computesGateGradients = false
    var gateGradientBuffer: Buffer?
    /// Where blocks' parameters and gradients live while they run (ZeRO); nil: the flat buffers. Weak: the
    /// engine that sets itself here holds the model, and a strong reference back made every training run
    /// leak its model, gradients and optimizer moments (a study running many trainings in one process grew
    /// by a run's worth of memory each time). Whoever uses the model keeps its engine (or Trainer) alive.
    public weak var residency: BlockResidency?
    /// bf16 copies of the blocks when `precision` is bf16 (Transformer+Precision.swift).
    var lowPrecision: LowPrecisionWeights?
    /// Advanced by every change of the fp32 parameters (`parametersChanged()`); a bf16 copy made at
    /// another version is stale.
    public internal(set) var parameterVersion = 0
    /// Per block, the base of its parameters and gradients while it is in use (block-local offsets).
    var parameterBase: [FloatPointer] = []
    var gradientBase: [FloatPointer?] = []

    let rotary: Rotary?
    /// The layers, each one forward and backward that training, recomputation and generation share.
    let layers: [TransformerLayer]
    var buffers: ActivationBuffers?
    /// Whether the last forward pass applied dropout (backward must then use its masks).
    var lastForwardDropped = false
    /// Mean loss of the last forward pass with targets, and how many positions it averaged.
    public private(set) var lastLoss: Float?
    public private(set) var lastValidCount = 0

    public init(config: ModelConfig) {
        let problems = config.problems()
        precondition(problems.isEmpty, "invalid model config: \(problems.joined(separator: "; "))")
        self.config = config
        self.layout = ParameterLayout(config: config)
        self.rotary = config.usesRotary
            ? Rotary(headDimension: config.headDimension, maxPositions: config.maxPositions, theta: config.ropeTheta,
                     scaling: config.ropeScaling)
            : nil
        self.layers = (0..<config.layerCount).map { TransformerLayer(config: config, index: $0) }
    }

    // MARK: Parameters

    /// Frees the flat parameter buffer for good: from now on a residency (ZeRO-3) provides every block.
    public func releaseParameterStorage() {
        precondition(residency != nil, "releaseParameterStorage() without a residency to provide the blocks")
        allocatedParameters = nil
        parametersSharded = true
    }

    /// Bytes of the model's own full-size buffers now allocated (parameters and gradients; activations
    /// and adapters not counted). Zero for a model whose parameters a ZeRO-3 engine holds.
    public var residentParameterBytes: Int {
        ((allocatedParameters?.capacity ?? 0) + (gradientStorage?.capacity ?? 0)) * MemoryLayout<Float>.stride
    }

    /// A copy of one tensor.
    public func tensor(_ role: TensorRole) -> Tensor {
        let e = layout[role]
        return Tensor(shape: e.shape, values: Array(UnsafeBufferPointer(start: flatParameters.pointer + e.offset, count: e.count)))
    }

    /// Overwrites one tensor.
    public func setTensor(_ role: TensorRole, _ value: Tensor) {
        let e = layout[role]
        precondition(value.shape == e.shape, "\(role.name): shape \(value.shape), layout has \(e.shape)")
        value.withUnsafeBufferPointer { (parameterStorage.pointer + e.offset).update(from: $0.baseAddress!, count: e.count) }
    }

    /// A copy of one tensor's gradient (zeros before the first backward pass).
    public func gradient(_ role: TensorRole) -> Tensor {
        let e = layout[role]
        guard let g = gradientStorage else { return Tensor(zeros: e.shape) }
        return Tensor(shape: e.shape, values: Array(UnsafeBufferPointer(start: g.pointer + e.offset, count: e.count)))
    }

    /// A tensor's parameters in the block currently in use.
    func p(_ role: TensorRole) -> FloatPointer {
        let b = layout.block(of: role)
        return parameterBase[b] + (layout.offset(role) - layout.blockRanges[b].lowerBound)
    }
    func pOpt(_ role: TensorRole) -> FloatPointer? { layout.contains(role) ? p(role) : nil }
    /// The gradient of a tensor, or nil when it is frozen or absent.
    func g(_ role: TensorRole) -> FloatPointer? {
        guard layout.contains(role), !frozen.contains(role) else { return nil }
        let b = layout.block(of: role)
        return gradientBase[b].map { $0 + (layout.offset(role) - layout.blockRanges[b].lowerBound) }
    }

    /// Vocabulary slice `s` of a sliced tensor (token embedding, untied head) in its block now in use:
    /// its first row (row `layout.vocabularyRows[s].lowerBound` of the tensor).
    func sliceP(_ role: TensorRole, _ s: Int) -> FloatPointer { parameterBase[layout.sliceBlocks(of: role).lowerBound + s] }
    /// Its gradient, or nil when the tensor is frozen or the block was acquired without gradients.
    func sliceG(_ role: TensorRole, _ s: Int) -> FloatPointer? {
        frozen.contains(role) ? nil : gradientBase[layout.sliceBlocks(of: role).lowerBound + s]
    }
    /// Whether a tensor receives a gradient in this backward pass.
    func needsGradient(_ role: TensorRole) -> Bool { trainsBaseWeights && layout.contains(role) && !frozen.contains(role) }

    /// Makes block `b` usable for `phase`: with a residency, asks it where the block's parameters (and,
    /// in backward unless `gradients` is false, gradients) are; otherwise they are slices of the flat
    /// buffers. A block acquired in backward without gradients is released with phase `.forward`.
    func acquire(_ b: Int, _ phase: BlockPhase, gradients: Bool = true) {
        if parameterBase.count != layout.blockCount {
            parameterBase = [FloatPointer](repeating: Transformer.unsetBlock, count: layout.blockCount)
            gradientBase = [FloatPointer?](repeating: nil, count: layout.blockCount)
        }
        if let residency {
            parameterBase[b] = residency.parameters(block: b, phase: phase)
            gradientBase[b] = phase == .backward && gradients && trainsBaseWeights ? residency.gradients(block: b) : nil
        } else {
            parameterBase[b] = flatParameters.pointer + layout.blockRanges[b].lowerBound
            gradientBase[b] = gradients ? gradientStorage.map { $0.pointer + layout.blockRanges[b].lowerBound } : nil
        }
        convertAcquired(b)
    }

    /// Block `b`'s parameters in the flat buffer, for a residency saying where a block is (ZeRO 0–2):
    /// not a change of the parameters, unlike `parameterStorage`.
    public func flatBlock(_ b: Int) -> UnsafeMutablePointer<Float> {
        flatParameters.pointer + layout.blockRanges[b].lowerBound
    }

    /// Stands for a block not yet acquired (never dereferenced).
    nonisolated(unsafe) static let unsetBlock = UnsafeMutablePointer<Float>.allocate(capacity: 1)

    /// Block `b` is done for `phase` (after backward its gradients are complete).
    func release(_ b: Int, _ phase: BlockPhase) {
        dropReleased(b)
        residency?.finished(block: b, phase: phase)
    }

    public func zeroGradients() {
        if let g = gradientStorage { g.pointer.update(repeating: 0, count: layout.totalCount) }
        adapters?.zeroGradients()
    }

    /// GPT-2's initialisation: N(0, 0.02) weights, residual projections scaled by 1/√(2L), zero biases,
    /// unit norm weights. Each tensor draws from its own stream, so the result does not depend on
    /// anything but the seed.
    public func initialize(seed: UInt64, std: Float = 0.02) {
        initialValues(seed: seed, std: std, range: 0..<layout.totalCount, into: parameterStorage.pointer)
    }

    /// The values `initialize` gives elements `range` (global offsets, padding 0) of the flat buffer,
    /// written to `destination`: a ZeRO-3 rank initialises its shard with exactly the values a whole
    /// model would hold there, without the whole model (each tensor's stream is skipped ahead).
    public func initialValues(seed: UInt64, std: Float = 0.02, range: Range<Int>, into destination: UnsafeMutablePointer<Float>) {
        let root = RandomStream(seed: seed)
        destination.update(repeating: 0, count: range.count)
        for (i, e) in layout.entries.enumerated() {
            let piece = e.range.clamped(to: range)
            if piece.isEmpty { continue }
            var rng = root.split(UInt64(i))
            rng.skipNormals(piece.lowerBound - e.offset)
            let out = UnsafeMutableBufferPointer(start: destination + (piece.lowerBound - range.lowerBound), count: piece.count)
            switch e.role {
            case .layer(_, .norm1Weight), .layer(_, .norm2Weight), .finalNormWeight:
                out.update(repeating: 1)
            case .layer(_, .norm1Bias), .layer(_, .norm2Bias), .finalNormBias,
                 .layer(_, .qBias), .layer(_, .kBias), .layer(_, .vBias), .layer(_, .oBias),
                 .layer(_, .upBias), .layer(_, .downBias):
                out.update(repeating: 0)
            case .layer(_, .o), .layer(_, .down):
                rng.fillNormal(out, std: std / (2 * Float(config.layerCount)).squareRoot())
            default:
                rng.fillNormal(out, std: std)
            }
        }
    }

    // MARK: Forward

    func buffersFor(B: Int, T: Int) -> ActivationBuffers {
        let headRows = min(B * T, headChunkRows ?? max(256, (1 << 24) / config.vocabularySize))
        if let b = buffers, b.B == B, b.T == T, b.checkpointing == activationCheckpointing, b.headRows == headRows { return b }
        buffers = nil  // the old set goes before the new one is made
        let b = ActivationBuffers(config: config, B: B, T: T, checkpointing: activationCheckpointing, headRows: headRows)
        buffers = b
        return b
    }

    /// Runs the model on `ids` ([B, T], row-major). With `targets` ([B, T]; negative = ignored) it also
    /// computes the mean cross-entropy, returned and kept in `lastLoss`.
    @discardableResult
    public func forward(ids: [Int32], targets: [Int32]? = nil, B: Int, T: Int) -> Float? {
        precondition(ids.count == B * T, "ids hold \(ids.count) tokens, expected B·T = \(B * T)")
        precondition(T <= config.maxPositions, "sequence \(T) longer than the model's \(config.maxPositions) positions")
        precondition(ids.allSatisfy { $0 >= 0 && Int($0) < config.vocabularySize }, "token id outside the vocabulary")
        let a = buffersFor(B: B, T: T)
        a.ids = ids
        if let targets {
            precondition(targets.count == B * T, "targets hold \(targets.count), expected \(B * T)")
            a.targets = targets
        }
        let c = config
        let (N, C, L) = (B * T, c.hiddenSize, c.layerCount)

        profiler?.inBackward = false
        lastForwardDropped = dropping
        adapters?.beginPass()
        var layerDropout: LayerDropout?
        if dropping {
            a.allocateDropout(config: c)
            let pass = dropoutRNG.split(0)
            dropoutRNG = dropoutRNG.split(1)
            a.dropoutPass = pass
            layerDropout = LayerDropout(pass: pass, probability: dropout, branch: a.branch!.pointer)
        }
        timed(.embedding) {
            a.ids.withUnsafeBufferPointer { ids in embed(out: a.residual[0].pointer, ids: ids.baseAddress!, B: B, T: T) }
        }
        if let layerDropout {
            Dropout.forward(x: a.residual[0].pointer, mask: a.embeddingMask!.pointer, stream: layerDropout.pass.split(0),
                            probability: dropout, N: N, C: C)
        }
        let attention = Attention(B: B, T: T, H: c.headCount, G: c.keyValueHeadCount, D: c.headDimension)
        let scratch = a.attentionScratch(count: attention.scratchCount)
        for l in 0..<L {
            acquire(layout.layerBlock(l), .forward)
            defer { release(layout.layerBlock(l), .forward) }
            layers[l].forward(self, x: a.residual[l].pointer, next: a.residual[l + 1].pointer, s: a.layer(l),
                              attention: .causal(attention, scratch: scratch), B: B, T: T, dropout: layerDropout, observe: true)
        }
        acquire(layout.finalNormBlock, .forward)
        timed(.norm) {
            norm(out: a.finalNorm.pointer, mean: a.finalMean.pointer, rstd: a.finalRstd.pointer,
                 inp: a.residual[L].pointer, weight: .finalNormWeight, bias: .finalNormBias, N: N)
        }
        release(layout.finalNormBlock, .forward)
        let total = headForward(a, withTargets: targets != nil)

        guard let total else { lastLoss = nil; return nil }
        let valid = a.targets.withUnsafeBufferPointer { CrossEntropy.validCount($0.baseAddress!, N: N) }
        lastValidCount = valid
        lastLoss = valid > 0 ? Float(total / Double(valid)) : 0
        return lastLoss
    }

    /// A copy of the last forward pass's logits, [B, T, V] (a copy: backward overwrites the buffer).
    public var logits: Tensor {
        guard let a = buffers else { preconditionFailure("logits read before any forward pass") }
        guard a.logitsValid, let logits = a.logits else {
            preconditionFailure(a.logits == nil
                ? "logits are not kept by a forward with targets under activation checkpointing"
                : "logits read after backward (it writes their gradient in place of them)")
        }
        // Kept vocabulary slice by slice ([N, V_s] each, in slice order): reassembled row by row.
        let (N, V) = (a.N, config.vocabularySize)
        return Tensor(shape: [a.B, a.T, V]) { out in
            for columns in layout.vocabularyRows {
                let slice = logits.pointer + N * columns.lowerBound
                for n in 0..<N {
                    (out.baseAddress! + n * V + columns.lowerBound).update(from: slice + n * columns.count, count: columns.count)
                }
            }
        }
    }

    /// out[b,t,:] = token embedding (+ position embedding) of `ids`, a vocabulary slice at a time: each
    /// slice's block is acquired in turn and gives the rows of the tokens in it (with GPT-2's position
    /// embedding block acquired around them), so no more than one slice is in use at once.
    func embed(out: FloatPointer, ids: UnsafePointer<Int32>, B: Int, T: Int, positionOffset: Int = 0) {
        if let pb = layout.positionBlock { acquire(pb, .forward) }
        for (s, rows) in layout.vocabularyRows.enumerated() {
            let b = layout.tokenEmbeddingBlocks.lowerBound + s
            acquire(b, .forward)
            Embedding.forward(out: out, ids: ids, wte: sliceP(.tokenEmbedding, s), rows: rows, wpe: pOpt(.positionEmbedding),
                              B: B, T: T, C: config.hiddenSize, positionOffset: positionOffset)
            release(b, .forward)
        }
        if let pb = layout.positionBlock { release(pb, .forward) }
    }

    /// The blocks a forward pass acquires, in its order (what a rank that computes nothing walks to keep
    /// in step with the others' gathers): position embedding, token slices, layers, final norm, head slices.
    public var forwardBlockOrder: [Int] {
        Array(layout.positionBlock.map { [$0] } ?? []) + Array(layout.tokenEmbeddingBlocks)
            + (0..<config.layerCount).map(layout.layerBlock) + [layout.finalNormBlock] + Array(layout.sliceBlocks(of: headWeight))
    }

    func norm(out: FloatPointer, mean: FloatPointer, rstd: FloatPointer, inp: ConstFloatPointer,
              weight: TensorRole, bias: TensorRole, N: Int) {
        if config.family == .gpt2 {
            LayerNorm.forward(out: out, mean: mean, rstd: rstd, inp: inp, weight: p(weight), bias: pOpt(bias),
                              N: N, C: config.hiddenSize, eps: config.normEpsilon)
        } else {
            RMSNorm.forward(out: out, rstd: rstd, inp: inp, weight: p(weight), N: N, C: config.hiddenSize, eps: config.normEpsilon)
        }
    }

    func normBackward(dinp: FloatPointer, dout: ConstFloatPointer, inp: ConstFloatPointer, mean: ConstFloatPointer, rstd: ConstFloatPointer,
                      weight: TensorRole, bias: TensorRole, N: Int) {
        if config.family == .gpt2 {
            LayerNorm.backward(dinp: dinp, dweight: g(weight), dbias: g(bias), dout: dout, inp: inp, weight: p(weight),
                               mean: mean, rstd: rstd, N: N, C: config.hiddenSize)
        } else {
            RMSNorm.backward(dinp: dinp, dweight: g(weight), dout: dout, inp: inp, weight: p(weight), rstd: rstd,
                             N: N, C: config.hiddenSize)
        }
    }
}
