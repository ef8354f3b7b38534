import Foundation
import Testing
import SubspaceCore
import SubspaceDistributed
import SubspaceModel
@testable import SubspaceTraining

/// ZeRO stages on in-process ranks against one process with plain AdamW: same global batches, same
/// losses (to float reassociation), frozen tensors untouched.
@Suite struct ZeroEngineTests {
    /// Vocabulary 400: the embedding and the untied head are 4 vocabulary slices each (blocks of their own).
    static let config = ModelConfig(family: .llama, vocabularySize: 400, hiddenSize: 16, layerCount: 2, headCount: 4,
                                    keyValueHeadCount: 2, intermediateSize: 24, maxPositions: 8)
    static let steps = 4, globalBatch = 4, T = 8

    /// Global batch of step s: `globalBatch` sequences; rank r of n takes a contiguous slice.
    static func batch(step: Int, rank: Int, ranks: Int, microBatch: Int, vocabulary: Int = config.vocabularySize) -> [MicroBatch] {
        var rng = RandomStream(seed: 100).split(UInt64(step))
        let ids = (0..<(globalBatch * T)).map { _ in Int32(rng.nextInt(below: vocabulary)) }
        var targets = (0..<(globalBatch * T)).map { i in i % T == T - 1 ? Int32(-100) : ids[i + 1] }
        targets[3] = -100
        let per = globalBatch / ranks
        return stride(from: rank * per, to: (rank + 1) * per, by: microBatch).map { first in
            let range = (first * T)..<((first + microBatch) * T)
            return MicroBatch(ids: Array(ids[range]), targets: Array(targets[range]), batch: microBatch, sequence: T)
        }
    }

    static func model(frozen: Set<TensorRole> = []) -> Transformer {
        let m = Transformer(config: config)
        m.initialize(seed: 9, std: 0.2)
        m.frozen = frozen
        return m
    }

    static let adam = AdamW(beta1: 0.9, beta2: 0.95, weightDecay: 0.1)

    /// One process, ModelOptimizer: the reference trajectory.
    static func reference(frozen: Set<TensorRole>) -> ([Double], [Float]) {
        let m = model(frozen: frozen)
        let optimizer = ModelOptimizer(model: m, adam: adam, maxGradientNorm: 0.5)
        var losses: [Double] = []
        for s in 0..<steps {
            let mb = batch(step: s, rank: 0, ranks: 1, microBatch: globalBatch)[0]
            m.zeroGradients()
            losses.append(Double(m.forward(ids: mb.ids, targets: mb.targets, B: mb.batch, T: T)!))
            m.backward()
            optimizer.step(learningRate: 1e-2)
        }
        return (losses, Array(UnsafeBufferPointer(start: m.parameterStorage.pointer, count: m.layout.totalCount)))
    }

    @Test(arguments: [0, 1, 2, 3], [1, 2, 4])
    func matchesSingleProcess(stage: Int, ranks: Int) throws {
        try check(stage: stage, ranks: ranks, bucketBytes: 16 << 20, overlap: false)
    }

    /// Small buckets (one block each) reduced on the communication thread during backward.
    @Test(arguments: [0, 1], [2, 4])
    func bucketsOverlappedWithBackward(stage: Int, ranks: Int) throws {
        try check(stage: stage, ranks: ranks, bucketBytes: 1024, overlap: true)
    }

    /// Once its holders let go, an engine and its model are freed at every stage (the model refers to its
    /// engine weakly; a strong reference back kept both, and every run's moments, alive for good).
    @Test(arguments: [0, 1, 2, 3])
    func engineAndModelAreFreedAfterUse(stage: Int) throws {
        final class Weak: @unchecked Sendable { weak var engine: ZeroEngine?; weak var model: Transformer? }
        let refs = try LocalCluster.run(size: 2) { comm -> Weak in
            let refs = Weak()
            do {
                let engine = ZeroEngine(model: Self.model(), communicator: comm, stage: stage, adam: Self.adam, maxGradientNorm: 0.5)
                _ = try StepRunner(engine: engine).run(Self.batch(step: 0, rank: comm.rank, ranks: 2, microBatch: 1),
                                                       learningRate: 1e-2, step: 0)
                (refs.engine, refs.model) = (engine, engine.model)
                #expect(engine.model.residency === engine)
            }
            return refs
        }
        for r in refs {
            #expect(r.engine == nil && r.model == nil, "stage \(stage): engine or model still alive after use")
        }
    }

    func check(stage: Int, ranks: Int, bucketBytes: Int, overlap: Bool) throws {
        let frozen: Set<TensorRole> = [.layer(0, .q), .layer(1, .k)]
        let (expectedLosses, _) = Self.reference(frozen: frozen)
        let results = try LocalCluster.run(size: ranks) { comm -> ([Double], [Float], [Float]) in
            let m = Self.model(frozen: frozen)
            let frozenBefore = m.tensor(.layer(0, .q)).scalars + m.tensor(.layer(1, .k)).scalars
            let engine = ZeroEngine(model: m, communicator: comm, stage: stage, adam: Self.adam, maxGradientNorm: 0.5,
                                    bucketBytes: bucketBytes, overlap: overlap)
            if bucketBytes < 4096 { precondition(engine.buckets.count > 1, "small buckets should split the blocks") }
            let runner = StepRunner(engine: engine)
            var losses: [Double] = []
            for s in 0..<Self.steps {
                // Two micro-batches per rank when there is room: gradient accumulation too.
                let micro = Self.globalBatch / ranks >= 2 ? Self.globalBatch / ranks / 2 : 1
                losses.append(try runner.run(Self.batch(step: s, rank: comm.rank, ranks: ranks, microBatch: micro),
                                             learningRate: 1e-2, step: s).loss)
            }
            let final = try engine.fullParameters()
            let frozenAfter = Array(final[m.layout[.layer(0, .q)].range]) + Array(final[m.layout[.layer(1, .k)].range])
            return (losses, frozenBefore, frozenAfter)
        }
        for (rank, r) in results.enumerated() {
            for (s, (a, e)) in zip(r.0, expectedLosses).enumerated() {
                #expect(abs(a - e) <= 1e-5 * abs(e), "stage \(stage), \(ranks) ranks, rank \(rank), step \(s): \(a) vs \(e)")
            }
            #expect(r.1 == r.2, "frozen tensors changed (stage \(stage), \(ranks) ranks)")
        }
    }
}
