import Foundation
import Testing
import SubspaceCore
@testable import SubspaceModel

@Suite struct TextGenerationTests {
    static func model() -> Transformer {
        let config = ModelConfig(family: .llama, vocabularySize: 256, hiddenSize: 16, layerCount: 2, headCount: 4,
                                 keyValueHeadCount: 2, intermediateSize: 24, maxPositions: 64)
        let model = Transformer(config: config)
        model.initialize(seed: 5, std: 0.6)
        return model
    }

    @Test func streamedTextIsTheResultAndStopStringsCut() throws {
        let model = Self.model()
        let generation = TextGeneration(model: model, tokenizer: ByteTokenizer(), sampling: SamplingOptions(maxNewTokens: 24))
        let prompt = generation.promptIDs(text: "abc")
        var streamed = ""
        let free = try generation.run(prompt: prompt) { streamed += $0 }
        #expect(streamed == free.text)
        #expect(free.ids.count == 24 && free.reason == "max new tokens")
        #expect(try ByteTokenizer().decode(free.ids.map(Int.init)) == free.text)
        // A stop string taken from the middle of the free run cuts the text before it.
        let bytes = Array(free.text.utf8)
        guard bytes.count >= 8, let stop = String(validating: bytes[5..<8], as: UTF8.self) else { return }
        var stopped = TextGeneration(model: model, tokenizer: ByteTokenizer(), sampling: SamplingOptions(maxNewTokens: 24), stopStrings: [stop])
        stopped.sampling.seed = 0
        var chunks = ""
        let cut = try stopped.run(prompt: prompt) { chunks += $0 }
        let expected = String(free.text[..<free.text.range(of: stop)!.lowerBound])
        #expect(cut.text == expected && chunks == expected && cut.reason == "stop string")
    }

    @Test func stopTokensEndGeneration() throws {
        let model = Self.model()
        let free = Generator(model: model).generate(prompt: [97, 98], options: SamplingOptions(maxNewTokens: 10))
        let stopAt = free[3]
        let first = free.firstIndex(of: stopAt)!
        let generation = TextGeneration(model: model, tokenizer: ByteTokenizer(),
                                        sampling: SamplingOptions(maxNewTokens: 10, stopTokens: [stopAt]))
        let result = try generation.run(prompt: [97, 98])
        #expect(result.ids == Array(free[...first]) && result.reason == "stop token")
    }

    @Test func topPAndTopKNarrowTheChoice() {
        let logits: [Float] = [0, 5, 1, 4.9, -2]
        var rng = RandomStream(seed: 1)
        // A tiny p keeps only the most likely token: sampling is greedy.
        for _ in 0..<20 {
            #expect(Generator.sample(logits, options: SamplingOptions(temperature: 1, topP: 0.01), rng: &rng) == 1)
        }
        // p = 0.9 keeps tokens 1 and 3 (together > 0.9 of the mass), never the others.
        var seen = Set<Int32>()
        for _ in 0..<200 { seen.insert(Generator.sample(logits, options: SamplingOptions(temperature: 1, topP: 0.9), rng: &rng)) }
        #expect(seen == [1, 3])
        for _ in 0..<50 { #expect(Generator.sample(logits, options: SamplingOptions(temperature: 1, topK: 1), rng: &rng) == 1) }
    }
}
