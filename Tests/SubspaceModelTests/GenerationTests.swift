import Testing
import SubspaceCore
@testable import SubspaceModel

@Suite struct GenerationTests {
    /// Greedy decoding with the key/value cache equals re-running the whole sequence for every token.
    @Test(arguments: ModelFamily.allCases)
    func cachedDecodingMatchesFullForward(family: ModelFamily) throws {
        let config = ModelConfig(family: family, vocabularySize: 23, hiddenSize: 16, layerCount: 2, headCount: 4,
                                 keyValueHeadCount: family == .gpt2 ? 4 : 2, intermediateSize: 24, maxPositions: 20)
        let model = Transformer(config: config)
        model.initialize(seed: 11, std: 0.5)
        if family == .llama {  // with an adapter too
            let adapters = try LoRAAdapters(config: LoRAConfig(rank: 2, alpha: 4, targets: .names(["q_proj", "down_proj"])), model: config)
            var rng = RandomStream(seed: 2)
            rng.fillNormal(UnsafeMutableBufferPointer(start: adapters.storage.pointer, count: adapters.totalCount), std: 0.3)
            model.adapters = adapters
        }
        let prompt: [Int32] = [3, 17, 5, 9]
        let generated = Generator(model: model).generate(prompt: prompt, options: SamplingOptions(maxNewTokens: 10))
        #expect(generated.count == 10)

        Self.expectGreedyMatchesFullForward(model, prompt: prompt, generated: generated, "\(family)")
    }

    /// Each generated token is the argmax of the whole-sequence forward's last row over the prompt and
    /// the tokens before it.
    static func expectGreedyMatchesFullForward(_ model: Transformer, prompt: [Int32], generated: [Int32], _ label: String,
                                               sourceLocation: SourceLocation = #_sourceLocation) {
        var sequence = prompt
        for expected in generated {
            model.forward(ids: sequence, B: 1, T: sequence.count)
            let logits = model.logits.scalars.suffix(model.config.vocabularySize)
            let best = Int32(logits.indices.max { logits[$0] < logits[$1] }! - logits.startIndex)
            #expect(best == expected, "\(label): token \(sequence.count - prompt.count)", sourceLocation: sourceLocation)
            sequence.append(expected)
        }
    }

    @Test func stopsAtStopTokenAndPositionLimit() {
        let config = ModelConfig(family: .gpt2, vocabularySize: 5, hiddenSize: 8, layerCount: 1, headCount: 2, maxPositions: 6)
        let model = Transformer(config: config)
        model.initialize(seed: 1)
        let g = Generator(model: model)
        let all = g.generate(prompt: [1, 2], options: SamplingOptions(maxNewTokens: 50))
        #expect(all.count == 5, "6 positions: 2 prompt tokens, then 4 fed back, and a 5th sampled from the last")
        let first = all[0]
        #expect(g.generate(prompt: [1, 2], options: SamplingOptions(maxNewTokens: 50, stopTokens: [first])) == [first])
    }

    @Test func samplingRespectsTopKAndTemperature() {
        var rng = RandomStream(seed: 3)
        let logits: [Float] = [0, 5, 4, -1, 3]
        var seen = Set<Int32>()
        for _ in 0..<500 {
            seen.insert(Generator.sample(logits, options: SamplingOptions(temperature: 1, topK: 2), rng: &rng))
        }
        #expect(seen == [1, 2])
        #expect(Generator.sample(logits, options: SamplingOptions(), rng: &rng) == 1)
        var counts = [Int](repeating: 0, count: 5)
        for _ in 0..<4000 { counts[Int(Generator.sample(logits, options: SamplingOptions(temperature: 1), rng: &rng))] += 1 }
        let p1 = Float(counts[1]) / 4000, expected = expf(5) / ([0, 5, 4, -1, 3] as [Float]).map(expf).reduce(0, +)
        #expect(abs(p1 - expected) < 0.03)
    }
}

import Foundation
