import Foundation
import SubspaceCore

/// How the next token is chosen.
public struct SamplingOptions: Sendable {
    /// 0 picks the most likely token (greedy); otherwise logits are divided by it before sampling.
    public var temperature: Float = 0
    /// Sample only among the k most likely tokens (nil: all).
    public var topK: Int? = nil
    /// Nucleus sampling: only among the most likely tokens whose probabilities (after temperature and
    /// top-k) add up to at least p (nil or 1: all).
    public var topP: Float? = nil
    public var maxNewTokens: Int = 32
    /// Generation stops after emitting one of these.
    public var stopTokens: Set<Int32> = []
    public var seed: UInt64 = 0
    /// Make exactly `Generator.passes(self)` model passes whatever ends generation early (a stop token,
    /// the last position); the extra ones only visit each block's residency, without computing. Ranks
    /// whose blocks are collectives (ZeRO-3) then stay in step while generating different examples.
    public var fixedPasses = false

    public init(temperature: Float = 0, topK: Int? = nil, topP: Float? = nil, maxNewTokens: Int = 32, stopTokens: Set<Int32> = [],
                seed: UInt64 = 0, fixedPasses: Bool = false) {
        self.fixedPasses = fixedPasses
        self.temperature = temperature
        self.topK = topK
        self.topP = topP
        self.maxNewTokens = maxNewTokens
        self.stopTokens = stopTokens
        self.seed = seed
    }
}

/// Autoregressive generation with a key/value cache: the prompt is run once, then each new token costs
/// one row through the model, attending to the cached keys and values of everything before it.
/// Uses the model's weights and adapters as they are (no gradients, no dropout).
public final class Generator {
    public let model: Transformer
    private var keys: [TensorStorage] = []    // per layer [G, capacity, D]
    private var values: [TensorStorage] = []
    private var capacity = 0
    /// Per-step work buffers, kept while the number of new tokens (the prompt, then 1) and the cache
    /// length allow, so decoding a token allocates nothing.
    private var work: StepBuffers?

    final class StepBuffers {
        let rows: Int, length: Int
        let x, h, qkv, attn, pre, act, mean, rstd, scores: TensorStorage
        init(_ c: ModelConfig, rows T: Int, length: Int) {
            (self.rows, self.length) = (T, length)
            let preWidth = c.gatedMLP ? 2 * c.intermediateSize : c.intermediateSize
            x = TensorStorage(capacity: T * c.hiddenSize); h = TensorStorage(capacity: T * c.hiddenSize)
            qkv = TensorStorage(capacity: T * c.qkvWidth); attn = TensorStorage(capacity: T * c.queryWidth)
            pre = TensorStorage(capacity: T * preWidth); act = TensorStorage(capacity: T * c.intermediateSize)
            mean = TensorStorage(capacity: T); rstd = TensorStorage(capacity: T)
            scores = TensorStorage(capacity: T * length)
        }
    }

    func buffers(rows: Int, length: Int) -> StepBuffers {
        if let w = work, w.rows >= rows, w.length >= length { return w }
        let w = StepBuffers(model.config, rows: max(rows, work?.rows ?? 0), length: max(length, capacity))
        work = w
        return w
    }

    public init(model: Transformer) { self.model = model }

    /// The tokens generated after `prompt` (a stop token included when one ends it). Generation also
    /// ends at the model's last position.
    public func generate(prompt: [Int32], options: SamplingOptions) -> [Int32] {
        generate(prompt: prompt, options: options) { _ in true }
    }

    /// `generate(prompt:options:)`, calling `onToken` with each new token as it is chosen; generation
    /// also ends when `onToken` returns false (a stop string was written).
    public func generate(prompt: [Int32], options: SamplingOptions, onToken: (Int32) -> Bool) -> [Int32] {
        let c = model.config
        precondition(!prompt.isEmpty, "generation needs a non-empty prompt")
        precondition(prompt.count <= c.maxPositions, "prompt of \(prompt.count) tokens exceeds \(c.maxPositions) positions")
        reserve(min(prompt.count + options.maxNewTokens, c.maxPositions))
        var rng = RandomStream(seed: options.seed, stream: 0x6E)
        var logits = step(prompt, position: 0)
        var passes = 1
        var position = prompt.count  // where the next token would be fed back
        var out: [Int32] = []
        while out.count < options.maxNewTokens {
            let next = Self.sample(logits, options: options, rng: &rng)
            out.append(next)
            let goOn = onToken(next)
            if !goOn || options.stopTokens.contains(next) || out.count == options.maxNewTokens || position >= c.maxPositions { break }
            logits = step([next], position: position)
            passes += 1
            position += 1
        }
        if options.fixedPasses { idle(passes: Self.passes(options) - passes) }
        return out
    }

    /// The model passes one `generate` makes with `fixedPasses`: the prompt, then one per further token.
    public static func passes(_ options: SamplingOptions) -> Int { max(1, options.maxNewTokens) }

    /// `passes` passes that only visit every block's residency in a pass's order (acquire, release),
    /// computing nothing: what a rank with nothing left to generate does to keep in step.
    public func idle(passes: Int) {
        guard passes > 0, model.residency != nil else { return }
        for _ in 0..<passes {
            for b in 0..<model.layout.blockCount {
                model.acquire(b, .forward)
                model.release(b, .forward)
            }
        }
    }

    private func reserve(_ n: Int) {
        let c = model.config
        guard n > capacity else { return }
        capacity = n
        keys = (0..<c.layerCount).map { _ in TensorStorage(capacity: c.keyValueHeadCount * n * c.headDimension) }
        values = (0..<c.layerCount).map { _ in TensorStorage(capacity: c.keyValueHeadCount * n * c.headDimension) }
    }

    /// Picks a token from one row of logits.
    public static func sample(_ logits: [Float], options: SamplingOptions, rng: inout RandomStream) -> Int32 {
        if options.temperature <= 0 {
            var best = 0
            for i in 1..<logits.count where logits[i] > logits[best] { best = i }
            return Int32(best)
        }
        var candidates = Array(logits.indices)
        if let k = options.topK, k < logits.count {
            candidates.sort { logits[$0] > logits[$1] }
            candidates = Array(candidates.prefix(max(1, k)))
        }
        var scaled = candidates.map { logits[$0] / options.temperature }
        let top = scaled.max()!
        var weights = scaled.map { expf($0 - top) }
        if let p = options.topP, p < 1 {
            // The smallest set of most likely candidates whose probability mass reaches p (at least one).
            let order = weights.indices.sorted { weights[$0] > weights[$1] }
            let total = weights.reduce(0, +)
            var mass: Float = 0, keep = 0
            for i in order {
                mass += weights[i] / total
                keep += 1
                if mass >= p { break }
            }
            let kept = Array(order.prefix(keep))
            candidates = kept.map { candidates[$0] }
            scaled = kept.map { scaled[$0] }
            weights = kept.map { weights[$0] }
        }
        var u = rng.nextUniform() * weights.reduce(0, +)
        for (i, w) in weights.enumerated() {
            u -= w
            if u < 0 { return Int32(candidates[i]) }
        }
        return Int32(candidates.last!)
    }

    /// Runs `tokens` at positions `position…`, appending their keys/values to the cache; returns the
    /// logits of the last one.
    func step(_ tokens: [Int32], position p0: Int) -> [Float] {
        let m = model, c = m.config
        let (T, C, S, I, D) = (tokens.count, c.hiddenSize, c.qkvWidth, c.intermediateSize, c.headDimension)
        let (H, G) = (c.headCount, c.keyValueHeadCount)
        let preWidth = c.gatedMLP ? 2 * I : I
        let length = p0 + T
        let w = buffers(rows: T, length: length)
        let (x, h, qkv, attn, pre, act, mean, rstd, scores) = (w.x, w.h, w.qkv, w.attn, w.pre, w.act, w.mean, w.rstd, w.scores)
        let L = c.layerCount
        m.acquire(0, .forward)
        defer { m.release(0, .forward) }
        tokens.withUnsafeBufferPointer { ids in
            Embedding.forward(out: x.pointer, ids: ids.baseAddress!, wte: m.p(.tokenEmbedding), wpe: m.pOpt(.positionEmbedding),
                              B: 1, T: T, C: C, positionOffset: p0)
        }
        let scale = 1 / Float(D).squareRoot()
        for l in 0..<c.layerCount {
            m.acquire(l + 1, .forward)
            defer { m.release(l + 1, .forward) }
            m.norm(out: h.pointer, mean: mean.pointer, rstd: rstd.pointer, inp: x.pointer,
                   weight: .layer(l, .norm1Weight), bias: .layer(l, .norm1Bias), N: T)
            Linear.forward(out: qkv.pointer, ldOut: S, inp: h.pointer, ldIn: C, weight: m.p(.layer(l, .q)),
                           bias: m.pOpt(.layer(l, .qBias)), N: T, IC: C, OC: S)
            m.adapters?.forward(layer: l, group: .qkv, out: qkv.pointer, ldOut: S, inp: h.pointer, ldIn: C, N: T)
            m.rotary?.apply(qkv: qkv.pointer, rowStride: S, queryHeads: H, kvHeads: G, kOffset: c.queryWidth,
                            B: 1, T: T, positionOffset: p0)
            let K = keys[l].pointer, V = values[l].pointer
            for t in 0..<T {
                for g in 0..<G {
                    (K + (g * capacity + p0 + t) * D).update(from: qkv.pointer + t * S + H * D + g * D, count: D)
                    (V + (g * capacity + p0 + t) * D).update(from: qkv.pointer + t * S + (H + G) * D + g * D, count: D)
                }
            }
            for head in 0..<H {
                let g = head / (H / G)
                BLAS.gemm(.none, .transposed, m: T, n: length, k: D, alpha: scale, a: qkv.pointer + head * D, lda: S,
                          b: K + g * capacity * D, ldb: D, beta: 0, c: scores.pointer, ldc: length)
                for i in 0..<T {
                    let row = scores.pointer + i * length
                    let visible = p0 + i + 1
                    var top = -Float.infinity
                    for j in 0..<visible { top = max(top, row[j]) }
                    var sum: Float = 0
                    for j in 0..<visible { row[j] = expf(row[j] - top); sum += row[j] }
                    for j in 0..<visible { row[j] /= sum }
                    for j in visible..<length { row[j] = 0 }
                }
                BLAS.gemm(.none, .none, m: T, n: D, k: length, a: scores.pointer, lda: length, b: V + g * capacity * D, ldb: D,
                          beta: 0, c: attn.pointer + head * D, ldc: H * D)
            }
            Linear.forward(out: x.pointer, ldOut: C, inp: attn.pointer, ldIn: c.queryWidth, weight: m.p(.layer(l, .o)),
                           bias: m.pOpt(.layer(l, .oBias)), N: T, IC: c.queryWidth, OC: C, accumulate: true)
            m.adapters?.forward(layer: l, group: .o, out: x.pointer, ldOut: C, inp: attn.pointer, ldIn: c.queryWidth, N: T)
            m.norm(out: h.pointer, mean: mean.pointer, rstd: rstd.pointer, inp: x.pointer,
                   weight: .layer(l, .norm2Weight), bias: .layer(l, .norm2Bias), N: T)
            Linear.forward(out: pre.pointer, ldOut: preWidth, inp: h.pointer, ldIn: C, weight: m.p(.layer(l, c.gatedMLP ? .gate : .up)),
                           bias: m.pOpt(.layer(l, .upBias)), N: T, IC: C, OC: preWidth)
            m.adapters?.forward(layer: l, group: .gateUp, out: pre.pointer, ldOut: preWidth, inp: h.pointer, ldIn: C, N: T)
            if c.gatedMLP { SwiGLU.forward(out: act.pointer, gateUp: pre.pointer, N: T, I: I) }
            else { GELU.forward(out: act.pointer, inp: pre.pointer, count: T * I) }
            Linear.forward(out: x.pointer, ldOut: C, inp: act.pointer, ldIn: I, weight: m.p(.layer(l, .down)),
                           bias: m.pOpt(.layer(l, .downBias)), N: T, IC: I, OC: C, accumulate: true)
            m.adapters?.forward(layer: l, group: .down, out: x.pointer, ldOut: C, inp: act.pointer, ldIn: I, N: T)
        }
        m.acquire(L + 1, .forward)
        defer { m.release(L + 1, .forward) }
        // Only the last position's logits are needed.
        let last = x.pointer + (T - 1) * C
        m.norm(out: h.pointer, mean: mean.pointer, rstd: rstd.pointer, inp: last,
               weight: .finalNormWeight, bias: .finalNormBias, N: 1)
        var logits = [Float](repeating: 0, count: c.vocabularySize)
        Linear.forward(out: &logits, ldOut: c.vocabularySize, inp: h.pointer, ldIn: C,
                       weight: m.p(c.tiedEmbeddings ? .tokenEmbedding : .outputHead), bias: nil, N: 1, IC: C, OC: c.vocabularySize)
        return logits
    }
}
