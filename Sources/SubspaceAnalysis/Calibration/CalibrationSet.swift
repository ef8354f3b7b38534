import Foundation
import SubspaceCore
import SubspaceModel
import SubspaceTraining

/// Calibration sequences of equal length, read from one of:
/// - a safetensors file with `input_ids` (int64 [N, T]), as `subspace forward` reads;
/// - a token-shard folder (`subspace data corpus`): consecutive windows of `sequenceLength` tokens of
///   one split;
/// - a text file, or JSONL with a `text` field (or `prompt` + `response`) per line, tokenized with
///   `tokenizer`, concatenated and cut into windows of `sequenceLength` tokens.
public struct CalibrationSet: Sendable {
    public let source: String
    public let sequenceLength: Int
    /// [count · sequenceLength] ids, sequence-major.
    public let ids: [Int32]
    public var count: Int { sequenceLength > 0 ? ids.count / sequenceLength : 0 }

    public init(source: String, sequenceLength: Int, ids: [Int32]) {
        self.source = source
        self.sequenceLength = sequenceLength
        self.ids = ids
    }

    public struct Options: Sendable {
        /// Tokens per sequence for folders and text (default: the model's context, at most 128).
        public var sequenceLength: Int?
        /// At most this many sequences (the first ones).
        public var maxSequences: Int?
        /// `bytes` or a tokenizer.json path; required for text and JSONL.
        public var tokenizer: String?
        /// The split of a token-shard folder.
        public var split: TokenShards.Split = .train
        public init(sequenceLength: Int? = nil, maxSequences: Int? = nil, tokenizer: String? = nil, split: TokenShards.Split = .train) {
            self.sequenceLength = sequenceLength
            self.maxSequences = maxSequences
            self.tokenizer = tokenizer
            self.split = split
        }
    }

    /// Reads `path` for a model of `config`; every problem names the file and what is wrong.
    public static func load(_ path: String, options: Options, model config: ModelConfig) throws -> CalibrationSet {
        func fail(_ reason: String) -> AnalysisError { AnalysisError(file: path, reason) }
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else { throw fail("calibration data not found") }
        let context = config.maxPositions
        if let t = options.sequenceLength, t < 2 || t > context {
            throw fail("--sequence-length \(t) must be in 2…\(context) (the model's context)")
        }
        var set: CalibrationSet
        if isDirectory.boolValue {
            let shards = try TokenShards(folder: path)
            let tokens = shards.tokens(options.split)
            let T = options.sequenceLength ?? min(context, 128)
            let n = tokens.count / T
            guard n >= 1 else { throw fail("the \(options.split.rawValue) split has \(tokens.count) tokens, fewer than one sequence of \(T)") }
            let count = min(n, options.maxSequences ?? n)
            var ids = [Int32](repeating: 0, count: count * T)
            ids.withUnsafeMutableBufferPointer { tokens.copy(0..<(count * T), into: $0) }
            set = CalibrationSet(source: path + " (\(options.split.rawValue) split)", sequenceLength: T, ids: ids)
        } else if path.hasSuffix(".safetensors") {
            let file = try SafetensorsFile(path: path)
            guard file.contains("input_ids") else { throw fail("no tensor named 'input_ids'") }
            let (shape, values) = try file.integers("input_ids")
            guard shape.count == 2, shape[0] >= 1, shape[1] >= 2 else { throw fail("input_ids must be [N, T] with N ≥ 1, T ≥ 2, got \(shape)") }
            guard shape[1] <= context else {
                throw fail("calibration sequences of \(shape[1]) tokens are longer than the model's context of \(context) positions")
            }
            let count = min(shape[0], options.maxSequences ?? shape[0])
            set = CalibrationSet(source: path, sequenceLength: shape[1], ids: values.prefix(count * shape[1]).map { Int32(clamping: $0) })
            if let bad = values.prefix(count * shape[1]).first(where: { $0 < 0 || $0 >= Int64(config.vocabularySize) }) {
                throw fail("input_ids holds \(bad), outside the vocabulary 0..<\(config.vocabularySize)")
            }
        } else {
            guard let spec = options.tokenizer else { throw fail("text or JSONL calibration data needs --tokenizer (bytes or a tokenizer.json)") }
            let tokenizer = try Tokenizers.load(spec)
            let text: String
            do { text = try String(contentsOfFile: path, encoding: .utf8) } catch { throw fail("cannot read as UTF-8 text") }
            var documents: [String] = []
            if path.hasSuffix(".jsonl") {
                for (i, line) in text.split(separator: "\n", omittingEmptySubsequences: true).enumerated() {
                    guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
                        throw fail("line \(i + 1) is not a JSON object")
                    }
                    if let t = object["text"] as? String { documents.append(t) }
                    else if let p = object["prompt"] as? String, let r = object["response"] as? String { documents.append(p + r) }
                    else { throw fail("line \(i + 1) has neither 'text' nor 'prompt' and 'response' strings") }
                }
            } else {
                documents = [text]
            }
            let T = options.sequenceLength ?? min(context, 128)
            var all: [Int32] = []
            for d in documents {
                all += tokenizer.encode(d).map(Int32.init)
                if let e = tokenizer.endOfText { all.append(Int32(e)) }
            }
            let n = all.count / T
            guard n >= 1 else { throw fail("\(all.count) tokens, fewer than one sequence of \(T)") }
            let count = min(n, options.maxSequences ?? n)
            set = CalibrationSet(source: path, sequenceLength: T, ids: Array(all.prefix(count * T)))
            if let bad = set.ids.first(where: { Int($0) >= config.vocabularySize }) {
                throw fail("the tokenizer produced id \(bad), outside the model's vocabulary 0..<\(config.vocabularySize)")
            }
        }
        return set
    }

    /// The sequences of rank `rank` of `size`: a contiguous slice, the first `count % size` ranks one more.
    public func slice(rank: Int, size: Int) -> Range<Int> {
        let base = count / size, extra = count % size
        let start = rank * base + min(rank, extra)
        return start..<(start + base + (rank < extra ? 1 : 0))
    }

    /// Runs `model.forward` over sequences `range` in batches of at most `batch`.
    public func forEachBatch(_ range: Range<Int>, batch: Int, _ body: (_ ids: [Int32], _ B: Int) throws -> Void) rethrows {
        let T = sequenceLength
        for start in stride(from: range.lowerBound, to: range.upperBound, by: max(1, batch)) {
            let end = min(start + batch, range.upperBound)
            try body(Array(ids[(start * T)..<(end * T)]), end - start)
        }
    }
}
