import ArgumentParser
import Foundation
import SubspaceCore
import SubspaceModel
import SubspaceTraining

/// `subspace eval`: loss and perplexity of an HF model (and adapter) on a corpus or JSONL, exact match on
/// SFT data; under mpirun the samples are split across the ranks. Rank 0 prints the result as JSON.
struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Loss/perplexity on a corpus or JSONL and exact match on SFT data, under mpirun; JSON out.")

    @Option(help: "HF model folder (config.json + safetensors).") var model: String
    @Option(help: "PEFT adapter folder.") var adapter: String?
    @Option(help: ArgumentHelp("A token-shard folder (its validation split), a .jsonl file (SFT examples, or lines with \"text\"), or a text file.", valueName: "path"))
    var data: String
    @Option(help: ArgumentHelp("tokenizer.json, a folder holding one, or 'bytes' (default: the model folder).", valueName: "file"))
    var tokenizer: String?
    @Option(help: "Positions per sample (default: the model's, at most 1024).") var sequence: Int?
    @Option(help: "Samples per forward pass.") var batch = 4
    @Option(help: "SFT messages: auto, chatml, llama3, llama2 or plain.") var chatFormat: ChatFormatChoice = .auto
    @Option(help: "SFT examples scored by exact match (greedy generation); 0 turns it off.") var exactMatch = 64
    @Option(help: "Tokens generated at most per exact-match example.") var maxNewTokens = 64
    @Option(help: ArgumentHelp("Also write the JSON result to this file.", valueName: "file")) var output: String?

    func validate() throws {
        if batch < 1 { throw ValidationError("--batch must be at least 1") }
        if let sequence, sequence < 1 { throw ValidationError("--sequence must be at least 1") }
        if exactMatch < 0 { throw ValidationError("--exact-match must be ≥ 0") }
        if exactMatch > 0 && maxNewTokens < 1 {
            throw ValidationError("--max-new-tokens must be at least 1 for exact match (--exact-match 0 turns it off)")
        }
    }

    func run() throws {
        RankedJob.run { job in
            var options = ModelEvaluation.Options(model: model, adapter: adapter, data: data)
            options.tokenizer = tokenizer
            options.sequence = sequence
            options.batch = batch
            options.chatFormat = chatFormat
            options.exactMatch = exactMatch
            options.maxNewTokens = maxNewTokens
            let result = try ModelEvaluation.run(options, communicator: try job.watchedWorld())
            guard job.isRoot else { return }
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            var json = try encoder.encode(result)
            json.append(0x0A)
            if let output { try json.write(to: URL(fileURLWithPath: output)) }
            FileHandle.standardOutput.write(json)
        }
    }
}
