import Foundation
import Testing
import SubspaceModel
@testable import SubspaceTraining

/// SFT on `messages` with a chat template: the model's own format, every assistant turn trained.
@Suite struct ChatSFTTests {
    static let tokenizers = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("SubspaceModelTests/Resources/tokenizers").path

    @Test(arguments: ["qwen2", "llama3", "llama2"])
    func everyAssistantTurnIsTrained(family: String) throws {
        let folder = Self.tokenizers + "/" + family
        let tokenizer = try Tokenizers.load(folder)
        let chat = try ChatTemplate.resolve(.auto, config: try TokenizerConfig.near(folder))
        let jsonl = #"{"messages": [{"role": "user", "content": "Hi!"}, {"role": "assistant", "content": "Hello."}, {"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}]}"#
        let examples = try SFTJSONL.parse(jsonl, file: "chat.jsonl")
        let set = try SFTDataset(examples: examples, tokenizer: tokenizer, sequence: 128, chat: chat)
        let messages = examples[0].messages!
        let (ids, trained) = try chat.encode(messages, tokenizer: tokenizer, addGenerationPrompt: false)
        #expect(set.tokenized[0].ids == ids.map(Int32.init))
        #expect(trained.count == 2)
        var input = [Int32](repeating: 0, count: 128), targets = [Int32](repeating: 0, count: 128)
        input.withUnsafeMutableBufferPointer { i in targets.withUnsafeMutableBufferPointer { t in set.write(0, ids: i, targets: t) } }
        let targeted = targets.filter { $0 != TrainingSample.ignored }
        #expect(targeted == trained.flatMap { ids[$0] }.map(Int32.init))
        let text = try tokenizer.decode(targeted.map(Int.init))
        #expect(text.contains("Hello.") && text.contains("4"))
        #expect(!text.contains("Hi!") && !text.contains("2+2?"))
        // Exact match starts from the conversation before the last reply, with the generation prompt.
        let pair = set.evaluationPair(0)
        #expect(pair.response == "4")
        let prompt = try chat.encode(Array(messages.prefix(3)), tokenizer: tokenizer, addGenerationPrompt: true).ids
        #expect(pair.promptIDs == prompt.map(Int32.init))
        #expect(!set.stopTokens.isDisjoint(with: chat.stopTokens(tokenizer).map(Int32.init)))
    }

    @Test func plainKeepsTodaysFormat() throws {
        let jsonl = #"{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]}"#
        let examples = try SFTJSONL.parse(jsonl, file: "chat.jsonl")
        let set = try SFTDataset(examples: examples, tokenizer: ByteTokenizer(), sequence: 64, chat: ChatTemplate(format: .plain))
        #expect(set.tokenized[0].trained == nil)
        #expect(examples[0].prompt == "user: Hi\nassistant: ")
    }
}
