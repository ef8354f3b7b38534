import Foundation
import SubspaceCore
import SubspaceDistributed
import SubspaceModel

/// Data-parallel optimisation with ZeRO stages 0–3 over a communicator.
///
/// - Stage 0: every rank holds parameters, gradients and AdamW moments in full. Gradients are summed
///   with one all-reduce per block (packed: trainable elements only) and every rank takes the same step.
/// - Stage 1: moments are sharded: rank r keeps them for its part of each block, updates that part and
///   all-gathers the updated (trainable) parameters.
/// - Stage 2: gradients are sharded too: the model writes a block's gradients into a block-sized scratch
///   buffer, and as soon as the block's backward is done they are reduce-scattered into per-rank shard
///   accumulators (so no full-size gradient buffer exists).
/// - Stage 3: parameters are sharded as well: each rank keeps only its part of every block, and a
///   block is all-gathered into a block-sized buffer just before its forward and again before its
///   backward. The model has no full parameter buffer (`Transformer.releaseParameterStorage`): a rank
///   holds its shards, one buffer per kind of block (a vocabulary slice of the embedding or head, a
///   layer, a small block) for parameters and one for gradients, and nothing larger than about a layer
///   (`residentBytes`). Shards are filled in place
///   (`loadParameters`: a fresh initialisation or an HF folder, range by range).
///
/// Frozen tensors are never communicated as gradients, have no moments and are not updated. LoRA
/// adapters (small) are replicated: their gradients are all-reduced whatever the stage.
///
/// `@unchecked Sendable`: the communication thread only reads and writes the gradients of blocks whose
/// backward has finished (and their bucket buffers), and the main thread waits for it (`inFlight`)
/// before it touches those again or makes a collective call of its own.
public final class ZeroEngine: BlockResidency, @unchecked Sendable {
    public let stage: Int
    public let communicator: any Communicator
    public let model: Transformer
    public var adam: AdamW
    public var maxGradientNorm: Float?
    /// Set by the trainer: only the last micro-batch of a step reduces gradients (stages 0–1).
    public var isLastMicroBatch = true

    let shards: [BlockShard]
    var rank: Int { communicator.rank }
    var size: Int { communicator.size }

    /// Moments per block over the elements this rank updates (packed): all trainable ones at stage 0,
    /// its own at stages 1–3.
    var m: [TensorStorage] = [], v: [TensorStorage] = []
    /// Stages 2–3: this rank's reduced gradients per block (packed own trainable elements).
    var gradientShards: [TensorStorage] = []
    /// Stage 3: this rank's parameters per block (its whole owned range, frozen elements included).
    var ownedParameters: [TensorStorage] = []
    /// Stages 2–3: block-sized buffers for parameters (stage 3) and gradients, one per kind of block
    /// (vocabulary slice, layer, small block): at most one layer or slice is materialised at a time.
    var parameterBuffers: [Int: TensorStorage] = [:], gradientBuffers: [Int: TensorStorage] = [:]
    /// Stages 1–2 (gathering updated parameters): a packed block and this rank's packed part; stages
    /// 2–3 with gradient accumulation: this rank's reduced part before it is added. Allocated on first use.
    var packScratch: TensorStorage?, receiveScratch: TensorStorage?
    /// Stages 2–3: blocks whose shard accumulator already holds this step's first reduction (a later
    /// micro-batch's reduction is added through `receiveScratch`; the first is written in place).
    var accumulated: [Bool] = []
    var adapterM: TensorStorage?, adapterV: TensorStorage?

    /// Stages 0–1: gradient buckets — runs of consecutive blocks, in backward order, of at most
    /// `bucketBytes` of trainable elements (a larger block is a bucket of its own) — each all-reduced as
    /// one packed buffer as soon as its last block's backward is done. With `overlap`, a communication
    /// thread reduces a bucket while the backward pass goes on with earlier layers (Open MPI makes no
    /// progress in the background by itself, so a thread is what lets the two run at once).
    public let buckets: [[Int]]
    let overlap: Bool
    /// Per bucket: reduced in place over its (contiguous) range of the gradient buffer, when every tensor
    /// of its blocks trains (padding and all: zeros summed); otherwise packed into `bucketBuffer`.
    var bucketInPlace: [Bool] = []
    /// The one packing buffer, sized for the largest packed bucket (buckets are reduced one at a time, on
    /// the communication queue or the main thread), allocated only when some bucket needs it.
    var bucketBuffer: TensorStorage?
    let communication = DispatchQueue(label: "subspace.gradient-buckets")
    let inFlight = DispatchGroup()
    var reducedBuckets = 0

    public init(model: Transformer, communicator: any Communicator, stage: Int, adam: AdamW, maxGradientNorm: Float?,
                bucketBytes: Int = 16 << 20, overlap: Bool = false) {
        precondition((0...3).contains(stage), "ZeRO stage \(stage)")
        self.model = model
        self.communicator = communicator
        self.stage = stage
        self.adam = adam
        self.maxGradientNorm = maxGradientNorm
        let layout = model.layout
        let trainable: (LayoutEntry) -> Bool = { !model.frozen.contains($0.role) }
        shards = (0..<layout.blockCount).map {
            BlockShard(range: layout.blockRanges[$0], entries: layout.entries(inBlock: $0), trainable: trainable, ranks: communicator.size)
        }
        // Buckets over blocks in the order backward finishes them: tail, last layer, …, embeddings.
        var plan: [[Int]] = [], current: [Int] = [], bytes = 0
        for b in (0..<shards.count).reversed() where shards[b].packedCount > 0 {
            let size = shards[b].packedCount * MemoryLayout<Float>.stride
            if !current.isEmpty && bytes + size > bucketBytes { plan.append(current); current = []; bytes = 0 }
            current.append(b)
            bytes += size
        }
        if !current.isEmpty { plan.append(current) }
        buckets = plan
        self.overlap = overlap
        let r = communicator.rank
        for s in shards {
            let n = stage == 0 ? s.packedCount : s.packedCounts[r]
            m.append(TensorStorage(capacity: n))
            v.append(TensorStorage(capacity: n))
            if stage >= 2 { gradientShards.append(TensorStorage(capacity: s.packedCounts[r])) }
            if stage == 3 {
                let own = TensorStorage(capacity: s.owned[r].count)
                if let full = model.allocatedParameters {  // a model built whole (e.g. changed by a study's prepareModel)
                    own.pointer.update(from: full.pointer + s.owned[r].lowerBound, count: s.owned[r].count)
                }
                ownedParameters.append(own)
            }
        }
        accumulated = [Bool](repeating: false, count: shards.count)
        if let adapters = model.adapters {
            adapterM = TensorStorage(capacity: adapters.totalCount)
            adapterV = TensorStorage(capacity: adapters.totalCount)
        }
        if stage < 2 {
            if model.trainsBaseWeights { model.allocateGradients() }
            bucketInPlace = buckets.map { bucket in
                bucket.allSatisfy { b in layout.entries(inBlock: b).allSatisfy { trainable($0) } }
            }
            let packed = buckets.indices.filter { !bucketInPlace[$0] }.map { buckets[$0].reduce(0) { $0 + shards[$1].packedCount } }
            if let largest = packed.max() { bucketBuffer = TensorStorage(capacity: largest) }
        }
        model.residency = self
        if stage == 3 { model.releaseParameterStorage() }  // the engine's shards are the parameters now
    }

    /// Fills the parameters from a source that can produce any range of the flat layout (a seeded
    /// initialisation, an HF folder): at stage 3 only this rank's part of each block, in place in its
    /// shards; otherwise the model's whole buffer. `fill(range, destination)` writes `range.count` values.
    public func loadParameters(_ fill: (Range<Int>, UnsafeMutablePointer<Float>) throws -> Void) rethrows {
        guard stage == 3 else { return try fill(0..<model.layout.totalCount, model.parameterStorage.pointer) }
        for (b, s) in shards.enumerated() { try fill(s.owned[rank], ownedParameters[b].pointer) }
    }

    /// What this rank holds for the model, in bytes: parameters (its shards, or the model's full buffer),
    /// gradients (full buffer, or shard accumulators), AdamW moments, and block buffers and scratch.
    public struct ResidentBytes: Sendable, CustomStringConvertible {
        public var parameters = 0, gradients = 0, optimizer = 0, buffers = 0
        /// The largest single allocation (a full-size one at stage 3 would show here).
        public var largestBuffer = 0
        public var total: Int { parameters + gradients + optimizer + buffers }
        public var description: String {
            "parameters \(parameters), gradients \(gradients), optimizer \(optimizer), buffers \(buffers) bytes (largest \(largestBuffer))"
        }
    }

    public var residentBytes: ResidentBytes {
        var r = ResidentBytes()
        let f = MemoryLayout<Float>.stride
        func add(_ keyPath: WritableKeyPath<ResidentBytes, Int>, _ storages: [TensorStorage?]) {
            for case let s? in storages {
                r[keyPath: keyPath] += s.capacity * f
                r.largestBuffer = max(r.largestBuffer, s.capacity * f)
            }
        }
        add(\.parameters, [model.allocatedParameters] + ownedParameters)
        add(\.gradients, [model.gradientStorage] + gradientShards)
        add(\.optimizer, m + v + [adapterM, adapterV])
        add(\.buffers, Array(parameterBuffers.values) + Array(gradientBuffers.values) + [packScratch, receiveScratch, bucketBuffer])
        return r
    }

    /// A block's parameters as the model sees them (block-local addressing), valid until the next call
    /// for a block of the same kind: gathered at stage 3 (collective), the model's buffer otherwise.
    public func gatheredBlock(_ b: Int) -> UnsafePointer<Float> {
        UnsafePointer(parameters(block: b, phase: .forward))
    }

    /// `receiveScratch`, sized for this rank's largest packed part of a block.
    func ownScratch() -> TensorStorage {
        if let s = receiveScratch { return s }
        let s = TensorStorage(capacity: shards.map { $0.packedCounts[rank] }.max() ?? 1)
        receiveScratch = s
        return s
    }

    /// Buffer slot for a block: 0 a vocabulary slice, 1 a layer, 2 a small block (position embedding,
    /// final norm); at most one block of each is in use at a time.
    func slot(_ b: Int) -> Int {
        switch model.layout.blockKinds[b] {
        case .vocabularySlice: 0
        case .layer: 1
        case .positionEmbedding, .finalNorm: 2
        }
    }

    /// Elements of a slot's buffer: its largest block.
    func slotCount(_ slot: Int) -> Int {
        shards.indices.filter { self.slot($0) == slot }.map { shards[$0].count }.max() ?? 1
    }

    // MARK: BlockResidency (stages 2–3)

    public func parameters(block b: Int, phase: BlockPhase) -> UnsafeMutablePointer<Float> {
        let s = shards[b]
        guard stage == 3 else { return model.flatBlock(b) }
        let buffer = parameterBuffers[slot(b)] ?? TensorStorage(capacity: slotCount(slot(b)))
        parameterBuffers[slot(b)] = buffer
        let own = ownedParameters[b]
        let input = UnsafeBufferPointer(start: own.pointer, count: s.owned[rank].count)
        let output = UnsafeMutableBufferPointer(start: buffer.pointer, count: s.count)
        collective("all-gather parameters of block \(b)") {
            try communicator.allGather(input, counts: s.owned.map(\.count), output: output)
        }
        return buffer.pointer
    }

    public func gradients(block b: Int) -> UnsafeMutablePointer<Float> {
        let s = shards[b]
        // Stages 0–1 accumulate in the model's full gradient buffer (across micro-batches too).
        if stage < 2 { return model.gradientStorage!.pointer + s.range.lowerBound }
        let buffer = gradientBuffers[slot(b)] ?? TensorStorage(capacity: slotCount(slot(b)))
        gradientBuffers[slot(b)] = buffer
        buffer.pointer.update(repeating: 0, count: s.count)
        return buffer.pointer
    }

    public func finished(block b: Int, phase: BlockPhase) {
        guard phase == .backward else { return }
        if stage < 2 {
            // On the step's last micro-batch, a bucket whose last block just finished can be reduced.
            guard isLastMicroBatch, model.gradientStorage != nil,
                  let i = buckets.firstIndex(where: { $0.last == b }) else { return }
            if overlap {
                inFlight.enter()
                communication.async { [self] in
                    reduceBucket(i)
                    inFlight.leave()
                }
            } else {
                reduceBucket(i)
            }
            reducedBuckets += 1
            return
        }
        // The block's gradients are complete: reduce-scatter its trainable elements to their owners.
        let s = shards[b]
        guard s.packedCount > 0, let buffer = gradientBuffers[slot(b)] else { return }
        s.packInPlace(buffer.pointer)
        let mine = s.packedCounts[rank]
        // The step's first reduction of the block lands in its accumulator; later ones are added to it.
        let first = !accumulated[b]
        let output: UnsafeMutablePointer<Float>
        if first {
            output = gradientShards[b].pointer
        } else {
            output = ownScratch().pointer
        }
        collective("reduce-scatter gradients of block \(b)") {
            try communicator.reduceScatter(UnsafeBufferPointer(start: buffer.pointer, count: s.packedCount),
                                           counts: s.packedCounts,
                                           output: UnsafeMutableBufferPointer(start: output, count: mine), op: .sum)
        }
        if first { accumulated[b] = true } else { BLAS.axpy(count: mine, alpha: 1, x: output, y: gradientShards[b].pointer) }
    }

    // MARK: Steps

    /// Clears gradients before a step's first micro-batch.
    public func zeroGradients() {
        model.zeroGradients()
        for g in gradientShards { g.pointer.update(repeating: 0, count: g.capacity) }
        accumulated = [Bool](repeating: false, count: shards.count)
    }

    /// All-reduces bucket `i`'s trainable gradients as one packed buffer (stages 0–1).
    func reduceBucket(_ i: Int) {
        guard let grads = model.gradientStorage else { return }
        if bucketInPlace[i] {
            // Buckets run over consecutive blocks, so the bucket is one range of the gradient buffer.
            let blocks = buckets[i].map { shards[$0].range }
            let lower = blocks.map(\.lowerBound).min()!, upper = blocks.map(\.upperBound).max()!
            collective("all-reduce gradient bucket \(i) (blocks \(buckets[i]))") {
                try communicator.allReduce(UnsafeMutableBufferPointer(start: grads.pointer + lower, count: upper - lower), op: .sum)
            }
            return
        }
        let buffer = bucketBuffer!.pointer
        var n = 0
        for b in buckets[i] { n += shards[b].pack(from: grads.pointer + shards[b].range.lowerBound, into: buffer + n) }
        collective("all-reduce gradient bucket \(i) (blocks \(buckets[i]))") {
            try communicator.allReduce(UnsafeMutableBufferPointer(start: buffer, count: n), op: .sum)
        }
        n = 0
        for b in buckets[i] {
            shards[b].unpack(buffer + n, into: grads.pointer + shards[b].range.lowerBound)
            n += shards[b].packedCount
        }
    }

    /// Waits until the communication thread has reduced every bucket it was given (stages 0–1 with
    /// overlap); the caller may then make collective calls of its own.
    public func waitForBuckets() { inFlight.wait() }

    /// Sums gradients over ranks and the adapters'. Stages 0–1 reduced their buckets as backward went
    /// (this waits for any still in flight); stages 2–3 reduce-scattered each block during backward.
    func reduceGradients() {
        if stage < 2 {
            inFlight.wait()
            if reducedBuckets != buckets.count {  // e.g. no backward since the last step
                for i in buckets.indices { reduceBucket(i) }
            }
            reducedBuckets = 0
        }
        if let adapters = model.adapters {
            let (trainA, trainB) = (adapters.config.trainA, adapters.config.trainB)
            if trainA && trainB {
                let g = UnsafeMutableBufferPointer(start: adapters.gradientStorage.pointer, count: adapters.totalCount)
                collective("all-reduce adapter gradients") { try communicator.allReduce(g, op: .sum) }
            } else if trainA || trainB {
                // Only the trainable factors travel (a frozen one has no gradient): packed, reduced, unpacked.
                let segments = adapters.adapters.map { trainA ? ($0.aOffset, $0.aCount) : ($0.bOffset, $0.bCount) }
                var packed = [Float](repeating: 0, count: segments.reduce(0) { $0 + $1.1 })
                var cursor = 0
                for (offset, count) in segments {
                    for i in 0..<count { packed[cursor + i] = adapters.gradientStorage.pointer[offset + i] }
                    cursor += count
                }
                collective("all-reduce trainable adapter gradients") { try communicator.allReduce(&packed, op: .sum) }
                cursor = 0
                for (offset, count) in segments {
                    for i in 0..<count { adapters.gradientStorage.pointer[offset + i] = packed[cursor + i] }
                    cursor += count
                }
            }
        }
    }

    /// The gradients this rank updates, per block, as (global range, pointer to its first gradient, decay).
    func updateSegments(_ b: Int) -> [(range: Range<Int>, decay: Bool)] {
        stage == 0 ? shards[b].segments : shards[b].segments(ownedBy: rank)
    }

    func gradientPointer(_ b: Int, _ global: Int, packedIndex: Int) -> UnsafeMutablePointer<Float> {
        stage >= 2 ? gradientShards[b].pointer + packedIndex : model.gradientStorage!.pointer + global
    }

    func parameterPointer(_ b: Int, _ global: Int) -> UnsafeMutablePointer<Float> {
        stage == 3 ? ownedParameters[b].pointer + (global - shards[b].owned[rank].lowerBound) : model.parameterStorage.pointer + global
    }

    /// Global ‖g‖ over every trainable element (base and adapters), after reduction.
    func gradientNorm() -> Double {
        var local = 0.0
        for b in shards.indices {
            var packed = 0
            for seg in updateSegments(b) {
                local += GradientClipping.sumOfSquares(gradientPointer(b, seg.range.lowerBound, packedIndex: packed), count: seg.range.count)
                packed += seg.range.count
            }
        }
        // Stage 0 holds every gradient on every rank; the others hold disjoint parts that add up.
        if stage > 0 {
            var total = [local]
            collective("all-reduce gradient norm") { try communicator.allReduce(&total, op: .sum) }
            local = total[0]
        }
        if let a = model.adapters { local += GradientClipping.sumOfSquares(a.gradientStorage.pointer, count: a.totalCount) }
        return local.squareRoot()
    }

    /// After the step's micro-batches: reduce, clip, AdamW, and bring every rank's parameters up to date.
    /// Returns the gradient norm before clipping.
    @discardableResult
    public func step(learningRate: Float) -> Double {
        reduceGradients()
        let norm = gradientNorm()
        apply(norm: norm, learningRate: learningRate)
        return norm
    }

    /// `step`, except that a non-finite gradient norm throws before anything is updated. The norm is
    /// global (bit-identical on every rank), so every rank throws alike and none is left in a collective.
    public func checkedStep(learningRate: Float, step: Int) throws -> Double {
        reduceGradients()
        let norm = gradientNorm()
        guard norm.isFinite else { throw TrainingError.nonFinite(step: step, what: "the gradient norm (\(norm))") }
        apply(norm: norm, learningRate: learningRate)
        return norm
    }

    /// Clips by `norm`, runs AdamW on this rank's elements and brings every rank's parameters up to date.
    func apply(norm: Double, learningRate: Float) {
        let factor = maxGradientNorm.map { GradientClipping.factor(norm: norm, maxNorm: $0) } ?? 1
        adam.beginStep()
        for b in shards.indices {
            var packed = 0
            for seg in updateSegments(b) {
                let g = gradientPointer(b, seg.range.lowerBound, packedIndex: packed)
                adam.update(params: parameterPointer(b, seg.range.lowerBound), grads: g, m: m[b].pointer + packed,
                            v: v[b].pointer + packed, count: seg.range.count, learningRate: learningRate, decay: seg.decay,
                            gradientScale: factor)
                packed += seg.range.count
            }
        }
        if stage == 1 || stage == 2 { gatherUpdatedParameters() }
        if shards.contains(where: { $0.packedCount > 0 }) { model.parametersChanged() }  // bf16 copies are remade at next use
        if let a = model.adapters, let am = adapterM, let av = adapterV {
            for adapter in a.adapters {
                for (offset, count, trains) in [(adapter.aOffset, adapter.aCount, a.config.trainA), (adapter.bOffset, adapter.bCount, a.config.trainB)] where trains {
                    adam.update(params: a.storage.pointer + offset, grads: a.gradientStorage.pointer + offset,
                                m: am.pointer + offset, v: av.pointer + offset, count: count, learningRate: learningRate, decay: true,
                                gradientScale: factor)
                }
            }
        }
    }

    /// Stages 1–2: every rank updated its part; all-gather the trainable elements of each block.
    func gatherUpdatedParameters() {
        if packScratch == nil { packScratch = TensorStorage(capacity: shards.map(\.packedCount).max() ?? 1) }
        let (packScratch, receiveScratch) = (packScratch!, ownScratch())
        for (b, s) in shards.enumerated() where s.packedCount > 0 {
            let block = model.parameterStorage.pointer + s.range.lowerBound
            let mine = s.pack(from: block, into: receiveScratch.pointer, window: s.owned[rank])
            collective("all-gather parameters of block \(b)") {
                try communicator.allGather(UnsafeBufferPointer(start: receiveScratch.pointer, count: mine), counts: s.packedCounts,
                                           output: UnsafeMutableBufferPointer(start: packScratch.pointer, count: s.packedCount))
            }
            s.unpack(packScratch.pointer, into: block)
        }
    }

    /// Runs a collective; a failure here is fatal for the job (another rank may be waiting in it), so
    /// it is raised as a `TrainingError` the executable turns into an abort.
    func collective(_ what: String, _ body: () throws -> Void) {
        do { try body() } catch { fatalCollectiveFailure(what, error) }
    }
}

/// The process cannot continue after a failed collective (peers may be blocked in it): print which one
/// and abort the whole job.
func fatalCollectiveFailure(_ what: String, _ error: any Error) -> Never {
    FileHandle.standardError.write(Data("\(what) failed: \(error)\n".utf8))
    if let environment = MPIEnvironment.current { environment.abort(code: 1) }
    fatalError("\(what) failed: \(error)")
}

public enum TrainingError: Error, CustomStringConvertible {
    case nonFinite(step: Int, what: String)
    case configuration(String)
    case checkpoint(String)

    public var description: String {
        switch self {
        case .nonFinite(let step, let what): "step \(step): \(what) is not finite; stopping (the last checkpoint is intact)"
        case .configuration(let m): m
        case .checkpoint(let m): m
        }
    }
}

extension ZeroEngine {
    /// After each rank filled only its own part of every block (a checkpoint read in parts): stages 0–2,
    /// which hold parameters whole, all-gather them; stage 0, which holds every moment, gathers those too.
    /// Collective; nothing to do at stage 3.
    func spreadOwnParts() {
        guard stage < 3 else { return }
        for (b, s) in shards.enumerated() {
            let own = Array(UnsafeBufferPointer(start: model.parameterStorage.pointer + s.owned[rank].lowerBound, count: s.owned[rank].count))
            let block = UnsafeMutableBufferPointer(start: model.parameterStorage.pointer + s.range.lowerBound, count: s.count)
            collective("all-gather parameters of block \(b) read from a checkpoint") {
                try own.withUnsafeBufferPointer { try communicator.allGather($0, counts: s.owned.map(\.count), output: block) }
            }
            guard stage == 0, s.packedCount > 0 else { continue }
            let first = s.packedCounts[..<rank].reduce(0, +)
            for moments in [m[b], v[b]] {
                let mine = Array(UnsafeBufferPointer(start: moments.pointer + first, count: s.packedCounts[rank]))
                collective("all-gather moments of block \(b) read from a checkpoint") {
                    try mine.withUnsafeBufferPointer {
                        try communicator.allGather($0, counts: s.packedCounts, output: UnsafeMutableBufferPointer(start: moments.pointer, count: s.packedCount))
                    }
                }
            }
        }
    }

    /// Collective: every rank passes its local failure ("" for none); all throw the first one (naming its
    /// rank) or all go on, so no rank is left alone in a later collective.
    public func agree(_ failure: String, or makeError: (String) -> any Error) throws {
        let all = try communicator.allGatherArrays(Array(failure.utf8)).map { String(decoding: $0, as: UTF8.self) }
        if let (r, message) = all.enumerated().first(where: { !$0.element.isEmpty }) {
            throw makeError(size > 1 ? "rank \(r): \(message)" : message)
        }
    }

    /// Writes the model as an HF folder (`config.json`, safetensors) without ever holding it whole:
    /// collective; blocks are walked in order (all-gathered one at a time at stage 3) and each file is
    /// streamed out by the rank `HFBlockExport` gives it (rank 0 for a model under `maxShardBytes`).
    public func exportHF(to folder: String, dtype: DType = .f32, maxShardBytes: Int = 5 << 30) throws {
        let plan = HFBlockExport(config: model.config, ranks: size, dtype: dtype, maxShardBytes: maxShardBytes)
        var failure = ""
        do { try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true) } catch { failure = "\(error)" }
        do { try plan.writeFiles(rank: rank, folder: folder) { gatheredBlock($0) } } catch { if failure.isEmpty { failure = "\(error)" } }
        if rank == 0 && failure.isEmpty {
            do { try plan.finish(folder: folder) } catch { failure = "\(error)" }
        }
        try agree(failure, or: { TrainingError.checkpoint("cannot write the model to \(folder): \($0)") })
    }

    /// The whole parameter buffer on every rank (all-gathered at stage 3): a full copy, for tests and
    /// small studies only (exports use `exportHF`).
    public func fullParameters() throws -> [Float] {
        if stage < 3 { return Array(UnsafeBufferPointer(start: model.parameterStorage.pointer, count: model.layout.totalCount)) }
        var out = [Float](repeating: 0, count: model.layout.totalCount)
        for (b, s) in shards.enumerated() {
            let own = UnsafeBufferPointer(start: ownedParameters[b].pointer, count: s.owned[rank].count)
            try out.withUnsafeMutableBufferPointer { all in
                try communicator.allGather(own, counts: s.owned.map(\.count),
                                           output: UnsafeMutableBufferPointer(rebasing: all[s.range]))
            }
        }
        return out
    }
}

extension ZeroEngine {
    /// AdamW's first and second moments in layout order on every rank (all-gathered at stages 1–3;
    /// zero where nothing trains): a full copy, for tests.
    public func fullMoments() throws -> (m: [Float], v: [Float]) {
        func gather(_ moments: [TensorStorage]) throws -> [Float] {
            var out = [Float](repeating: 0, count: model.layout.totalCount)
            for (b, s) in shards.enumerated() where s.packedCount > 0 {
                var packed = [Float](repeating: 0, count: s.packedCount)
                if stage == 0 {
                    packed = Array(UnsafeBufferPointer(start: moments[b].pointer, count: s.packedCount))
                } else {
                    let own = UnsafeBufferPointer(start: moments[b].pointer, count: s.packedCounts[rank])
                    try packed.withUnsafeMutableBufferPointer { try communicator.allGather(own, counts: s.packedCounts, output: $0) }
                }
                out.withUnsafeMutableBufferPointer { o in
                    packed.withUnsafeBufferPointer { p in s.unpack(p.baseAddress!, into: o.baseAddress! + s.range.lowerBound) }
                }
            }
            return out
        }
        return (try gather(m), try gather(v))
    }
}
