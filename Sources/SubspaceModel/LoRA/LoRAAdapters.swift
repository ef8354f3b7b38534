import Foundation
import SubspaceCore

/// LoRA adapters on a transformer's linear modules, with PEFT's semantics: for a module W [out, in],
/// y = x·Wᵀ + scale · dropout(x)·Aᵀ·Bᵀ with A = `lora_A` [r, in] and B = `lora_B` [out, r].
///
/// All factors live in one flat buffer (and their gradients in another of the same layout), so the
/// optimizer step and the gradient all-reduce of LoRA training are single calls over contiguous memory.
public final class LoRAAdapters: @unchecked Sendable {
    public struct Adapter: Sendable {
        public let module: LinearModule
        /// Offsets of A and B in the flat buffer.
        public let aOffset: Int
        public let bOffset: Int
        public var aCount: Int
        public var bCount: Int
    }

    public private(set) var config: LoRAConfig
    public let adapters: [Adapter]
    public let storage: TensorStorage
    public let gradientStorage: TensorStorage
    public var totalCount: Int { storage.capacity }
    /// Whether dropout is applied (training) or not (evaluation).
    public var training = false
    var dropoutRNG: RandomStream
    /// The current pass's dropout stream: adapter i's mask row n draws from `pass.split(i).split(n)`, so a
    /// recomputation (activation checkpointing) draws the same masks, and rows are drawn in parallel.
    private var pass: RandomStream

    /// Per adapter, kept from forward for backward: dropout(x)·Aᵀ [N, r], and the dropped-out input
    /// [N, in] when dropout is on.
    private var xa: [TensorStorage] = []
    private var dropped: [TensorStorage?] = []
    private var scratch: TensorStorage?
    /// Dropout backward: dxa·A before the mask, the size of the widest adapted input.
    private var maskedScratch: TensorStorage?
    private var rows = 0
    private let byGroup: [Key: [Int]]

    struct Key: Hashable { let layer: Int; let group: LinearGroup }

    /// Adapters on the modules `config` selects, initialised as PEFT does by default: A kaiming-uniform
    /// (bound 1/√in, which is PyTorch's kaiming_uniform_ with a = √5), B zero.
    public init(config: LoRAConfig, model: ModelConfig, seed: UInt64 = 0) throws {
        guard config.rank >= 1 else { throw LoRAError(reason: "LoRA rank r must be ≥ 1, got \(config.rank)") }
        guard config.dropout >= 0 && config.dropout < 1 else { throw LoRAError(reason: "lora_dropout must be in [0, 1), got \(config.dropout)") }
        let modules = try config.select(from: HFNaming(config: model).linearModules)
        var list: [Adapter] = []
        var cursor = 0
        for m in modules {
            let a = config.rank * m.inFeatures, b = m.outFeatures * config.rank
            list.append(Adapter(module: m, aOffset: cursor, bOffset: cursor + a, aCount: a, bCount: b))
            cursor += a + b
        }
        self.config = config
        self.adapters = list
        self.storage = TensorStorage(capacity: cursor)
        self.gradientStorage = TensorStorage(capacity: cursor)
        self.dropoutRNG = RandomStream(seed: seed, stream: 0xD0)
        self.pass = dropoutRNG
        var grouped: [Key: [Int]] = [:]
        for (i, a) in list.enumerated() { grouped[Key(layer: a.module.layer, group: a.module.group), default: []].append(i) }
        self.byGroup = grouped
        let root = RandomStream(seed: seed, stream: 0x10A)
        for (i, a) in list.enumerated() {
            var rng = root.split(UInt64(i))
            let bound = 1 / Float(a.module.inFeatures).squareRoot()
            rng.fillUniform(UnsafeMutableBufferPointer(start: storage.pointer + a.aOffset, count: a.aCount), low: -bound, high: bound)
        }
    }

    /// Makes one factor (PEFT `lora_A` or `lora_B`) of every adapter trainable or frozen.
    public func setTraining(_ factor: LoRAFactor, _ trains: Bool) {
        if factor == .down { config.trainA = trains } else { config.trainB = trains }
    }

    public func adapter(path: String) -> Adapter? { adapters.first { $0.module.path == path } }

    /// A copy of lora_A [r, in] or lora_B [out, r] of an adapter.
    public func factor(_ adapter: Adapter, b: Bool, gradient: Bool = false) -> Tensor {
        let base = (gradient ? gradientStorage : storage).pointer + (b ? adapter.bOffset : adapter.aOffset)
        let shape = b ? [adapter.module.outFeatures, config.rank] : [config.rank, adapter.module.inFeatures]
        return Tensor(shape: shape, values: Array(UnsafeBufferPointer(start: base, count: shape[0] * shape[1])))
    }

    public func setFactor(_ adapter: Adapter, b: Bool, _ value: Tensor) {
        let shape = b ? [adapter.module.outFeatures, config.rank] : [config.rank, adapter.module.inFeatures]
        precondition(value.shape == shape, "\(adapter.module.path).lora_\(b ? "B" : "A"): shape \(value.shape), expected \(shape)")
        value.withUnsafeBufferPointer {
            (storage.pointer + (b ? adapter.bOffset : adapter.aOffset)).update(from: $0.baseAddress!, count: $0.count)
        }
    }

    /// Makes the dropout masks a pure function of (seed, step), so a resumed run draws the same masks.
    public func reseedDropout(seed: UInt64, step: Int) {
        dropoutRNG = RandomStream(seed: seed, stream: 0xD0).split(UInt64(step))
    }

    /// Starts a forward pass: the masks of this pass are fixed; the next pass draws new ones. Called by
    /// `Transformer.forward` (not by a checkpoint recomputation, which must draw the same masks).
    func beginPass() {
        pass = dropoutRNG.split(0)
        dropoutRNG = dropoutRNG.split(1)
    }

    public func zeroGradients() { gradientStorage.pointer.update(repeating: 0, count: totalCount) }

    private func prepare(rows N: Int) {
        guard N != rows || xa.count != adapters.count else { return }
        rows = N
        xa = adapters.map { _ in TensorStorage(capacity: N * config.rank) }
        dropped = adapters.map { config.dropout > 0 ? TensorStorage(capacity: N * $0.module.inFeatures) : nil }
        scratch = TensorStorage(capacity: N * config.rank)
        maskedScratch = config.dropout > 0 ? TensorStorage(capacity: N * (adapters.map(\.module.inFeatures).max() ?? 0)) : nil
    }

    /// out[:, rowOffset ..< rowOffset + outFeatures] += scale · dropout(inp)·Aᵀ·Bᵀ for the adapters on
    /// `group` of `layer`: the LoRA half of a layer's `LinearOp`, run right after the base product.
    func forward(layer: Int, group: LinearGroup, out: FloatPointer, ldOut: Int, inp: ConstFloatPointer, ldIn: Int, N: Int) {
        forward(layer: layer, group: group, out: Optional(out), ldOut: ldOut, inp: inp, ldIn: ldIn, N: N)
    }

    /// What backward reads (the dropped-out input and dropout(inp)·Aᵀ) without the output: a checkpoint
    /// recomputation of a product whose output is not needed again.
    func keepForBackward(layer: Int, group: LinearGroup, inp: ConstFloatPointer, ldIn: Int, N: Int) {
        forward(layer: layer, group: group, out: nil, ldOut: 0, inp: inp, ldIn: ldIn, N: N)
    }

    private func forward(layer: Int, group: LinearGroup, out: FloatPointer?, ldOut: Int, inp: ConstFloatPointer, ldIn: Int, N: Int) {
        guard let indices = byGroup[Key(layer: layer, group: group)] else { return }
        prepare(rows: N)
        let r = config.rank
        for i in indices {
            let a = adapters[i], m = a.module, width = m.inFeatures
            var x = inp, ldx = ldIn
            if let d = dropped[i] {
                let keep = 1 - config.dropout, training = training, stream = pass.split(UInt64(i))
                Parallel.rows(N, minimumPerChunk: 16) { rows in
                    for n in rows {
                        let o = d.pointer + n * width, v = inp + n * ldIn
                        if training {
                            var rng = stream.split(UInt64(n))
                            for j in 0..<width { o[j] = rng.nextUniform() < keep ? v[j] / keep : 0 }
                        } else {
                            o.update(from: v, count: width)
                        }
                    }
                }
                x = UnsafePointer(d.pointer)
                ldx = width
            }
            ParallelGEMM.gemm(.none, .transposed, m: N, n: r, k: width, a: x, lda: ldx, b: storage.pointer + a.aOffset,
                              ldb: width, beta: 0, c: xa[i].pointer, ldc: r)
            guard let out else { continue }
            ParallelGEMM.gemm(.none, .transposed, m: N, n: m.outFeatures, k: r, alpha: config.scale, a: xa[i].pointer, lda: r,
                              b: storage.pointer + a.bOffset, ldb: r, beta: 1, c: out + m.rowOffset, ldc: ldOut)
        }
    }

    /// Accumulates the adapters' gradients and adds their share of ∂L/∂inp into `dinp`.
    func backward(layer: Int, group: LinearGroup, dout: ConstFloatPointer, ldDout: Int, inp: ConstFloatPointer, ldIn: Int,
                  dinp: FloatPointer, ldDinp: Int, N: Int) {
        guard let indices = byGroup[Key(layer: layer, group: group)] else { return }
        let r = config.rank, scale = config.scale
        let dxa = scratch!.pointer
        for i in indices {
            let a = adapters[i], m = a.module, width = m.inFeatures
            let dy = dout + m.rowOffset
            let x: ConstFloatPointer = dropped[i].map { UnsafePointer($0.pointer) } ?? inp
            let ldx = dropped[i] == nil ? ldIn : width
            if config.trainB {  // dB += scale · dyᵀ · xa
                ParallelGEMM.gemm(.transposed, .none, m: m.outFeatures, n: r, k: N, alpha: scale, a: dy, lda: ldDout,
                                  b: xa[i].pointer, ldb: r, beta: 1, c: gradientStorage.pointer + a.bOffset, ldc: r)
            }
            // dxa = scale · dy · B
            ParallelGEMM.gemm(.none, .none, m: N, n: r, k: m.outFeatures, alpha: scale, a: dy, lda: ldDout,
                              b: storage.pointer + a.bOffset, ldb: r, beta: 0, c: dxa, ldc: r)
            if config.trainA {  // dA += dxaᵀ · dropout(x)
                ParallelGEMM.gemm(.transposed, .none, m: r, n: width, k: N, a: dxa, lda: r, b: x, ldb: ldx,
                                  beta: 1, c: gradientStorage.pointer + a.aOffset, ldc: width)
            }
            // dinp += dxa · A, through the dropout mask when there is one.
            if let d = dropped[i], training {
                let keep = 1 - config.dropout
                let tmp = maskedScratch!.pointer
                ParallelGEMM.gemm(.none, .none, m: N, n: width, k: r, a: dxa, lda: r, b: storage.pointer + a.aOffset,
                                  ldb: width, beta: 0, c: tmp, ldc: width)
                Parallel.rows(N, minimumPerChunk: 16) { rows in
                    for n in rows {
                        let kept = d.pointer + n * width, t = tmp + n * width, o = dinp + n * ldDinp
                        for j in 0..<width where kept[j] != 0 { o[j] += t[j] / keep }
                    }
                }
            } else {
                ParallelGEMM.gemm(.none, .none, m: N, n: width, k: r, a: dxa, lda: r, b: storage.pointer + a.aOffset,
                                  ldb: width, beta: 1, c: dinp, ldc: ldDinp)
            }
        }
    }

    /// W += sign · scale · B·A for every adapted module, accumulated in double precision and rounded once.
    public func merge(into model: Transformer, sign: Double = 1) {
        let r = config.rank
        for a in adapters {
            let m = a.module
            let A = storage.pointer + a.aOffset, B = storage.pointer + a.bOffset
            // The module's rows are consecutive in the layout: parts of a fused group are adjacent.
            model.acquire(model.layout.layerBlock(m.layer), .forward)
            defer { model.release(model.layout.layerBlock(m.layer), .forward) }
            let w = model.p(.layer(m.layer, m.parts[0]))
            for i in 0..<m.outFeatures {
                for j in 0..<m.inFeatures {
                    var s = 0.0
                    for k in 0..<r { s += Double(B[i * r + k]) * Double(A[k * m.inFeatures + j]) }
                    let index = i * m.inFeatures + j
                    w[index] = Float(Double(w[index]) + sign * Double(config.scale) * s)
                }
            }
        }
        model.parametersChanged()
    }

    /// Undoes `merge`.
    public func unmerge(from model: Transformer) { merge(into: model, sign: -1) }
}
