import ArgumentParser
import Foundation
import SubspaceCore
import SubspaceModel

/// `subspace generate`: text from an HF model folder (and a PEFT adapter), streamed to stdout.
struct Generate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Generate text from an HF model (and PEFT adapter): greedy or sampled, streamed to stdout.")

    @Option(help: "HF model folder (config.json + safetensors).") var model: String
    @Option(help: "PEFT adapter folder.") var adapter: String?
    @Option(help: ArgumentHelp("tokenizer.json, a folder holding one, or 'bytes' (default: the model folder).", valueName: "file"))
    var tokenizer: String?
    @Option(help: "The prompt text (encoded with the tokenizer's special tokens, e.g. Llama's BOS).") var prompt: String?
    @Option(help: ArgumentHelp("A JSON list of {\"role\", \"content\"} messages; the assistant's reply is generated.", valueName: "file"))
    var chat: String?
    @Option(help: "With --chat: auto (the tokenizer's template), chatml, llama3, llama2 or plain.") var chatFormat: ChatFormatChoice = .auto
    @Option(help: "Tokens to generate at most.") var maxNewTokens = 64
    @Option(help: "0: greedy; otherwise sample from the logits divided by this.") var temperature: Float = 0
    @Option(help: "Sample among the k most likely tokens.") var topK: Int?
    @Option(help: "Sample among the most likely tokens whose probabilities add up to p.") var topP: Float?
    @Option(help: "Random seed for sampling.") var seed: UInt64 = 0
    @Option(help: "Stop before this text (repeatable).") var stop: [String] = []
    @Flag(help: "Do not stop at the tokenizer's end-of-sequence tokens.") var ignoreEos = false

    func validate() throws {
        guard (prompt == nil) != (chat == nil) else { throw ValidationError("give exactly one of --prompt and --chat") }
        if maxNewTokens < 1 { throw ValidationError("--max-new-tokens must be at least 1") }
        if !(temperature >= 0 && temperature.isFinite) { throw ValidationError("--temperature must be a finite number ≥ 0 (0: greedy), got \(temperature)") }
        if let topK, topK < 1 { throw ValidationError("--top-k must be at least 1") }
        if let topP, !(topP > 0 && topP <= 1) { throw ValidationError("--top-p must be in (0, 1], got \(topP)") }
        if stop.contains("") { throw ValidationError("--stop takes a non-empty text to stop before") }
    }

    func run() throws {
        do {
            try generate()
        } catch {
            FileHandle.standardError.write(Data("error: \(error)\n".utf8))
            throw ExitCode.failure
        }
    }

    func generate() throws {
        Parallel.configure(threads: ThreadPolicy.decide().threads)
        let network = try HFCheckpoint.load(folder: model)
        if let adapter {
            network.adapters = try PEFTAdapter.load(folder: adapter, for: network.config)
            network.adapters?.training = false
        }
        let specifier = tokenizer ?? model
        let tokens = try Tokenizers.load(tokenizer, forModel: model, vocabularySize: network.config.vocabularySize)
        guard tokens.vocabularySize <= network.config.vocabularySize else {
            throw GenerationError("\(specifier): the tokenizer's vocabulary (\(tokens.vocabularySize)) does not fit the model's (\(network.config.vocabularySize))")
        }
        let config = try TokenizerConfig.near(specifier)
        var stopTokens = Set<Int32>()
        if !ignoreEos {
            if let eos = config?.eosToken, let id = tokens.specialTokens[eos] { stopTokens.insert(Int32(id)) }
            if let end = tokens.endOfText { stopTokens.insert(Int32(end)) }
        }
        var sampling = SamplingOptions(temperature: temperature, topK: topK, topP: topP, maxNewTokens: maxNewTokens, seed: seed)
        var generation = TextGeneration(model: network, tokenizer: tokens, sampling: sampling, stopStrings: stop)
        let ids: [Int32]
        if let chat {
            guard let data = FileManager.default.contents(atPath: chat) else { throw GenerationError("\(chat): missing or unreadable") }
            let messages = try ChatMessage.list(json: data, source: chat)
            guard !messages.isEmpty else { throw GenerationError("\(chat): holds no messages (a JSON list of {\"role\", \"content\"})") }
            let template = try ChatTemplate.resolve(chatFormat, config: config)
            try template.check(tokens, source: specifier)
            if !ignoreEos { stopTokens.formUnion(template.stopTokens(tokens).map { Int32($0) }) }
            ids = try generation.promptIDs(messages: messages, template: template)
        } else {
            ids = generation.promptIDs(text: prompt!)
        }
        guard !ids.isEmpty else { throw GenerationError("the prompt encodes to no tokens") }
        sampling.stopTokens = stopTokens
        generation.sampling = sampling
        _ = try generation.run(prompt: ids) { text in
            FileHandle.standardOutput.write(Data(text.utf8))
        }
        FileHandle.standardOutput.write(Data("\n".utf8))
    }
}
