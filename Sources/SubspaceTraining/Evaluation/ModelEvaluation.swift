import Foundation
import SubspaceDistributed
import SubspaceModel

/// What `subspace eval` does: the loss and perplexity of a model (and adapter) on a corpus or JSONL file,
/// and exact match on SFT examples, with the samples split across the ranks and the sums all-reduced, so
/// every rank returns the same result.
///
/// Data, by what `data` names:
/// - a folder with `corpus.json` (`subspace data corpus`): its validation split;
/// - a `.jsonl` file whose lines have `"text"`: each text encoded (with the tokenizer's special tokens) and
///   the ids concatenated into one stream;
/// - any other `.jsonl` file: SFT examples (`SFTJSONL` shapes), loss on the responses only (every assistant
///   turn with a chat template), plus exact match by greedy generation on the first `exactMatch` examples;
/// - any other file: UTF-8 text, encoded as one stream.
/// A stream is cut into windows of `sequence` + 1 tokens that overlap by one (`CorpusDataset`).
public enum ModelEvaluation {
    public struct Options: Sendable {
        public var model: String
        public var adapter: String?
        public var data: String
        /// A tokenizer specifier (`Tokenizers.load`); nil: the model folder.
        public var tokenizer: String?
        /// Positions per sample; nil: the model's positions, at most 1024.
        public var sequence: Int?
        public var batch = 4
        public var chatFormat: ChatFormatChoice = .auto
        /// SFT examples scored by exact match (0: none).
        public var exactMatch = 64
        public var maxNewTokens = 64

        public init(model: String, adapter: String? = nil, data: String) {
            self.model = model
            self.adapter = adapter
            self.data = data
        }
    }

    public struct Result: Sendable, Codable, Equatable {
        public var data: String
        public var kind: String
        public var samples: Int
        /// Target tokens the loss averages over.
        public var tokens: Int
        public var loss: Double
        public var perplexity: Double
        public var exactMatch: Double?
        public var exactMatchExamples: Int?
        public var ranks: Int

        enum CodingKeys: String, CodingKey {
            case data, kind, samples, tokens, loss, perplexity, ranks
            case exactMatch = "exact_match"
            case exactMatchExamples = "exact_match_examples"
        }
    }

    public static func run(_ o: Options, communicator comm: any Communicator) throws -> Result {
        let model = try HFCheckpoint.load(folder: o.model)
        if let adapter = o.adapter {
            model.adapters = try PEFTAdapter.load(folder: adapter, for: model.config)
            model.adapters?.training = false
        }
        let tokenizerSpecifier = o.tokenizer ?? o.model
        let tokenizer = try Tokenizers.load(o.tokenizer, forModel: o.model, vocabularySize: model.config.vocabularySize)
        guard tokenizer.vocabularySize <= model.config.vocabularySize else {
            throw DataError(file: tokenizerSpecifier, .mismatch,
                            "the tokenizer's vocabulary (\(tokenizer.vocabularySize)) does not fit the model's (\(model.config.vocabularySize))")
        }
        let sequence = o.sequence ?? min(model.config.maxPositions, 1024)
        guard sequence >= 1, sequence <= model.config.maxPositions else {
            throw DataError(file: o.model, .mismatch, "sequence \(sequence) is outside 1…\(model.config.maxPositions) (the model's positions)")
        }
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: o.data, isDirectory: &isFolder) else {
            throw DataError(file: o.data, .io, "no such file or folder")
        }
        let source: any TrainingSampleSource
        let kind: String
        var sft: SFTDataset?
        if isFolder.boolValue {
            let shards = try TokenShards(folder: o.data)
            try shards.checkFits(vocabularySize: model.config.vocabularySize)
            source = CorpusDataset(shards: shards, split: .validation, sequence: sequence)
            kind = "corpus"
        } else if o.data.hasSuffix(".jsonl"), let texts = try textLines(o.data) {
            let ids = texts.flatMap { tokenizer.encode($0, addingSpecialTokens: true) }
            source = TokenStream(ids: ids.map { Int32($0) }, sequence: sequence)
            kind = "text jsonl"
        } else if o.data.hasSuffix(".jsonl") {
            let chat = try ChatTemplate.resolve(o.chatFormat, config: try TokenizerConfig.near(tokenizerSpecifier))
            try chat.check(tokenizer, source: tokenizerSpecifier)
            let set = try SFTDataset(file: o.data, tokenizer: tokenizer, sequence: sequence, chat: chat)
            source = set
            sft = set
            kind = "sft jsonl"
        } else {
            guard let data = FileManager.default.contents(atPath: o.data), let text = String(validating: data, as: UTF8.self) else {
                throw DataError(file: o.data, .input, "is not readable UTF-8 text")
            }
            source = TokenStream(ids: tokenizer.encode(text, threads: 4).map { Int32($0) }, sequence: sequence)
            kind = "text"
        }
        guard source.count > 0 else {
            throw DataError(file: o.data, .mismatch, "holds no sample of \(sequence) + 1 tokens")
        }

        // Loss: this rank's samples in batches; sums of loss·targets and targets all-reduced.
        var sums = [0.0, 0.0, 0.0, 0.0]  // loss·tokens, tokens, exact matches, examples scored
        let mine = Array(stride(from: comm.rank, to: source.count, by: comm.size))
        for chunk in stride(from: 0, to: mine.count, by: max(1, o.batch)) {
            let indices = Array(mine[chunk..<min(chunk + max(1, o.batch), mine.count)])
            var ids: [Int32] = [], targets: [Int32] = []
            source.batch(indices, ids: &ids, targets: &targets)
            let counted = targets.filter { $0 >= 0 }.count
            guard counted > 0 else { continue }
            let loss = model.forward(ids: ids, targets: targets, B: indices.count, T: sequence) ?? .nan
            sums[0] += Double(loss) * Double(counted)
            sums[1] += Double(counted)
        }
        if let sft, o.exactMatch > 0 {
            let count = min(o.exactMatch, sft.count)
            let generator = Generator(model: model)
            for i in stride(from: comm.rank, to: count, by: comm.size) {
                let (prompt, response) = sft.evaluationPair(i)
                guard prompt.count < model.config.maxPositions else { continue }
                let output = generator.generate(prompt: prompt, options: SamplingOptions(maxNewTokens: o.maxNewTokens, stopTokens: sft.stopTokens))
                let answer = output.filter { !sft.stopTokens.contains($0) }.map(Int.init)
                if (try? tokenizer.decode(answer)) == response { sums[2] += 1 }
            }
            sums[3] = comm.rank == 0 ? Double(count) : 0
        }
        try comm.allReduce(&sums, op: .sum)
        let loss = sums[1] > 0 ? sums[0] / sums[1] : .nan
        return Result(data: o.data, kind: kind, samples: source.count, tokens: Int(sums[1]), loss: loss, perplexity: exp(loss),
                      exactMatch: sft != nil && sums[3] > 0 ? sums[2] / sums[3] : nil,
                      exactMatchExamples: sft != nil && sums[3] > 0 ? Int(sums[3]) : nil, ranks: comm.size)
    }

    /// The `"text"` of every line when the first non-blank line has one; nil otherwise (SFT shapes).
    static func textLines(_ file: String) throws -> [String]? {
        guard let data = FileManager.default.contents(atPath: file), let text = String(validating: data, as: UTF8.self) else {
            throw DataError(file: file, .io, "missing, unreadable or not UTF-8")
        }
        var texts: [String] = []
        for (number, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            if line.allSatisfy({ $0 == " " || $0 == "\t" || $0 == "\r" }) { continue }
            guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
                throw DataError(file: file, line: number + 1, .jsonl, "not a JSON object")
            }
            guard let t = object["text"] as? String else {
                if texts.isEmpty { return nil }
                throw DataError(file: file, line: number + 1, .jsonl, "has no string 'text' (earlier lines do)")
            }
            texts.append(t)
        }
        return texts.isEmpty ? nil : texts
    }
}

/// Windows of `sequence` + 1 ids over one id stream, as `CorpusDataset` cuts token shards.
struct TokenStream: TrainingSampleSource {
    let ids: [Int32]
    let sequence: Int
    var count: Int { max(0, ids.count - 1) / sequence }

    func write(_ index: Int, ids out: UnsafeMutableBufferPointer<Int32>, targets: UnsafeMutableBufferPointer<Int32>) {
        let start = index * sequence
        for t in 0..<sequence {
            out[t] = ids[start + t]
            targets[t] = ids[start + t + 1]
        }
    }
}
