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
/// Uses the model's weights and adapters as they are (no gradients, no dropout), in the model's precision:
/// in bf16 each block is converted once, not per token (its copy lasts until the parameters change),
/// except under ZeRO-3, where a block is gathered, and so converted, for every pass.
public final class Generator {
    public let model: Transformer
    /// Keys and values of the sequence so far, per layer.
    private var cache: KVCache?
    /// Per-step work buffers, kept while the number of new tokens (the prompt, then 1) allows, so decoding
    /// a token allocates nothing.
    private var work: StepBuffers?

    /// The residual stream of the new rows [T, C], the layer's activations, and the final norm's [1, C].
    final class StepBuffers {
        let rows: Int
        let x, h, mean, rstd: TensorStorage
        let layer: LayerActivations
        init(_ c: ModelConfig, rows T: Int) {
            rows = T
            x = TensorStorage(capacity: T * c.hiddenSize); h = TensorStorage(capacity: c.hiddenSize)
            mean = TensorStorage(capacity: 1); rstd = TensorStorage(capacity: 1)
            layer = LayerActivations(config: c, rows: T, logsumexpCount: 1)
        }
    }

    func buffers(rows: Int) -> StepBuffers {
        if let w = work, w.rows >= rows { return w }
        let w = StepBuffers(model.config, rows: max(rows, work?.rows ?? 0))
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
        precondition(options.temperature >= 0 && options.temperature.isFinite, "temperature \(options.temperature): must be a finite number ≥ 0")
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
            for b in model.forwardBlockOrder {
                model.acquire(b, .forward)
                model.release(b, .forward)
            }
        }
    }

    private func reserve(_ n: Int) {
        guard n > (cache?.capacity ?? 0) else { return }
        cache = KVCache(config: model.config, capacity: n)
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

    /// Runs `tokens` at positions `position…` through the model's layers (`TransformerLayer.forward`
    /// with the cache), appending their keys/values to the cache; returns the logits of the last one.
    func step(_ tokens: [Int32], position p0: Int) -> [Float] {
        let m = model, c = m.config
        let (T, C) = (tokens.count, c.hiddenSize)
        let w = buffers(rows: T)
        guard let cache else { preconditionFailure("step before reserve") }
        let L = c.layerCount
        tokens.withUnsafeBufferPointer { ids in m.embed(out: w.x.pointer, ids: ids.baseAddress!, B: 1, T: T, positionOffset: p0) }
        for l in 0..<L {
            m.acquire(m.layout.layerBlock(l), .forward)
            defer { m.release(m.layout.layerBlock(l), .forward) }
            m.layers[l].forward(m, x: w.x.pointer, next: w.x.pointer, s: w.layer, attention: .cached(cache, position: p0), B: 1, T: T)
        }
        // Only the last position's logits are needed.
        let last = w.x.pointer + (T - 1) * C
        m.acquire(m.layout.finalNormBlock, .forward)
        m.norm(out: w.h.pointer, mean: w.mean.pointer, rstd: w.rstd.pointer, inp: last,
               weight: .finalNormWeight, bias: .finalNormBias, N: 1)
        m.release(m.layout.finalNormBlock, .forward)
        let V = c.vocabularySize
        var logits = [Float](repeating: 0, count: V)
        logits.withUnsafeMutableBufferPointer { out in
            for (s, columns) in m.layout.vocabularyRows.enumerated() {
                let b = m.layout.sliceBlocks(of: m.headWeight).lowerBound + s
                m.acquire(b, .forward)
                Linear.forward(out: out.baseAddress! + columns.lowerBound, ldOut: V, inp: w.h.pointer, ldIn: C,
                               weight: m.sliceW(m.headWeight, s), bias: nil, N: 1, IC: C, OC: columns.count)
                m.release(b, .forward)
            }
        }
        return logits
    }
}
