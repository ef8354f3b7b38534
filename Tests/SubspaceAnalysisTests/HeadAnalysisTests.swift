import Foundation
import Testing
import SubspaceCore
import SubspaceDistributed
import SubspaceModel
@testable import SubspaceAnalysis

/// Per-head updates against direct sums over the weight slices, LoRA against its merged model, and
/// head importance identical on one and on three in-process ranks.
@Suite struct HeadAnalysisTests {
    /// Four query heads over two key/value heads (grouped-query attention), and GPT-2.
    static func config(_ family: ModelFamily) -> ModelConfig {
        ModelConfig(family: family, vocabularySize: 23, hiddenSize: 16, layerCount: 2, headCount: 4,
                    keyValueHeadCount: family == .gpt2 ? 4 : 2, intermediateSize: 20, maxPositions: 12,
                    tiedEmbeddings: family == .gpt2)
    }

    static func pair(_ family: ModelFamily) -> (Transformer, Transformer) {
        let base = Transformer(config: config(family)), tuned = Transformer(config: config(family))
        base.initialize(seed: 1)
        tuned.initialize(seed: 1)
        var rng = RandomStream(seed: 9)
        for i in 0..<tuned.layout.totalCount { tuned.parameterStorage.pointer[i] += 0.01 * rng.nextNormal() }
        return (base, tuned)
    }

    @Test(arguments: ModelFamily.allCases)
    func fullFineTuningMatchesSlices(family: ModelFamily) throws {
        let (base, tuned) = Self.pair(family)
        let c = base.config
        let (H, D, C) = (c.headCount, c.headDimension, c.hiddenSize)
        let group = H / c.keyValueHeadCount
        let outcomes = try LocalCluster.run(size: 2) { comm in try HeadUpdateMeasure.fullFineTuning(base: base, tuned: tuned, communicator: comm) }
        #expect(outcomes[0] == outcomes[1])
        let u = outcomes[0]
        for l in 0..<c.layerCount {
            for h in 0..<H {
                var delta = 0.0, weight = 0.0
                func add(_ part: LayerTensor, rows: Range<Int>?, cols: Range<Int>?) {
                    let b = base.tensor(.layer(l, part)), t = tuned.tensor(.layer(l, part))
                    let (R, K) = (b.shape[0], b.shape[1])
                    for i in rows ?? 0..<R { for j in cols ?? 0..<K {
                        let w = Double(b[i, j]), d = Double(t[i, j]) - w
                        delta += d * d; weight += w * w
                    } }
                    _ = C
                }
                let g = h / group
                add(.q, rows: (h * D)..<((h + 1) * D), cols: nil)
                add(.k, rows: (g * D)..<((g + 1) * D), cols: nil)
                add(.v, rows: (g * D)..<((g + 1) * D), cols: nil)
                add(.o, rows: nil, cols: (h * D)..<((h + 1) * D))
                #expect(abs(u.absolute[l][h] - delta.squareRoot()) <= 1e-9 * delta.squareRoot(), "\(family) L\(l) H\(h) absolute")
                #expect(abs(u.relative[l][h] - (delta / weight).squareRoot()) <= 1e-9, "\(family) L\(l) H\(h) relative")
            }
        }
    }

    @Test(arguments: ModelFamily.allCases)
    func loraMatchesItsMergedModel(family: ModelFamily) throws {
        let c = Self.config(family)
        let base = Transformer(config: c)
        base.initialize(seed: 2)
        let targets: [String] = family == .gpt2 ? ["c_attn", "c_proj"] : ["q_proj", "k_proj", "v_proj", "o_proj"]
        let adapters = try LoRAAdapters(config: LoRAConfig(rank: 3, alpha: 6, targets: .names(targets)), model: c, seed: 4)
        var rng = RandomStream(seed: 5)
        for a in adapters.adapters {
            for i in 0..<a.bCount { adapters.storage.pointer[a.bOffset + i] = 0.1 * rng.nextNormal() }
        }
        let merged = Transformer(config: c)
        merged.initialize(seed: 2)
        adapters.merge(into: merged)
        let comm = try LocalCluster.run(size: 1) { $0 }[0]
        let lora = try HeadUpdateMeasure.lora(base: base, adapters: adapters, communicator: comm)
        let fft = try HeadUpdateMeasure.fullFineTuning(base: base, tuned: merged, communicator: comm)
        for l in 0..<c.layerCount {
            for h in 0..<c.headCount {
                // The merged model is rounded to float once: the two agree to float precision.
                #expect(abs(lora.absolute[l][h] - fft.absolute[l][h]) <= 1e-4 * fft.absolute[l][h] + 1e-7, "\(family) L\(l) H\(h)")
                #expect(lora.absolute[l][h] > 0)
            }
        }
    }

    @Test func importanceIsTheSameOnThreeRanks() throws {
        let c = Self.config(.llama)
        let model = Transformer(config: c)
        model.initialize(seed: 3, std: 0.2)
        var rng = RandomStream(seed: 6)
        let (N, T) = (7, 10)
        let ids = (0..<(N * T)).map { _ in Int32(rng.nextInt(below: c.vocabularySize)) }
        let samples = SequenceSamples(causalLM: ids, count: N, sequence: T)
        let one = try LocalCluster.run(size: 1) { comm in
            try HeadImportance.measure(model: model, samples: samples, options: .init(microBatch: 3), communicator: comm)
        }[0]
        let models = (0..<3).map { _ in
            let m = Transformer(config: c)
            m.initialize(seed: 3, std: 0.2)
            return m
        }
        let three = try LocalCluster.run(size: 3) { comm in
            try HeadImportance.measure(model: models[comm.rank], samples: samples, options: .init(microBatch: 3), communicator: comm)
        }
        for s in three { #expect(s == one) }
        #expect(one.ablation!.flatMap { $0 }.contains { $0 != 0 })
        #expect(one.sequences == N)
    }
}
