import Foundation
import SubspaceCore

/// Text ↔ token ids.
///
/// `encode` never fails: every string has an encoding. `decode` fails only on an id the tokenizer does not
/// know, and returns text even when the ids do not spell valid UTF-8 (invalid sequences become U+FFFD);
/// `decodeBytes` gives the exact bytes where that matters (streaming generation, byte-exact round trips).
public protocol Tokenizer: Sendable {
    /// One more than the largest id `encode` can produce or `decode` accepts: the embedding table's row count.
    var vocabularySize: Int { get }
    /// The id that separates documents (`<|endoftext|>`), if the tokenizer has one.
    var endOfText: Int? { get }
    /// Special tokens by their content, e.g. `["<|endoftext|>": 0]`. Encoding maps these strings, wherever
    /// they occur in the text, to their ids.
    var specialTokens: [String: Int] { get }

    func encode(_ text: String) -> [Int]
    /// `encode(text)`, with the special tokens the tokenizer's post-processor adds (Llama's BOS) when
    /// `addingSpecialTokens` — HF's `encode(text, add_special_tokens=…)`.
    func encode(_ text: String, addingSpecialTokens: Bool) -> [Int]
    /// The same ids as `encode(text)`, computed with up to `threads` threads where the tokenizer can split
    /// the work (a tens-of-MB corpus); small texts are encoded on the calling thread.
    func encode(_ text: String, threads: Int) -> [Int]
    /// The bytes the ids stand for, concatenated. Throws `TokenizerError.unknownID` on an id outside the
    /// vocabulary.
    func decodeBytes(_ ids: [Int]) throws -> [UInt8]
    /// `decodeBytes` as text; bytes that are not valid UTF-8 become U+FFFD.
    func decode(_ ids: [Int]) throws -> String
}

extension Tokenizer {
    public func encode(_ text: String, threads: Int) -> [Int] { encode(text) }

    public func encode(_ text: String, addingSpecialTokens: Bool) -> [Int] { encode(text) }

    public func decode(_ ids: [Int]) throws -> String {
        String(decoding: try decodeBytes(ids), as: UTF8.self)
    }

    /// The id of a special token by its content (`"<|endoftext|>"`), nil if the tokenizer has no such token.
    public func id(ofSpecialToken content: String) -> Int? { specialTokens[content] }

    /// Encodes a UTF-8 text file with up to `threads` threads (default: the cores this process may use).
    public func encode(contentsOfFile path: String, threads: Int? = nil) throws -> [Int] {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path), options: .mappedIfSafe)
        } catch {
            throw TokenizerFileError(file: path, .io, "cannot read the file: \(FileSystemMessage.reason(error))")
        }
        guard let text = String(validating: data, as: UTF8.self) else {
            throw TokenizerFileError(file: path, .text, "is not valid UTF-8 text")
        }
        return encode(text, threads: threads ?? ThreadPolicy.decide().allowedCores)
    }
}

/// Picks a tokenizer from a command-line style specifier.
public enum Tokenizers {
    /// `"bytes"` → `ByteTokenizer`; a folder → the `tokenizer.json` inside it; any other path → a byte-level
    /// BPE `tokenizer.json` (`BPETokenizer`).
    public static func load(_ specifier: String) throws -> any Tokenizer {
        if specifier == "bytes" { return ByteTokenizer() }
        var isFolder: ObjCBool = false
        if FileManager.default.fileExists(atPath: specifier, isDirectory: &isFolder), isFolder.boolValue {
            return try BPETokenizer(contentsOfFile: (specifier as NSString).appendingPathComponent("tokenizer.json"))
        }
        return try BPETokenizer(contentsOfFile: specifier)
    }

    /// The tokenizer for the model in `modelFolder` with `vocabularySize` entries: `specifier` if given,
    /// else the folder's own tokenizer.json. A folder without one (Subspace's byte-level models) is an
    /// error that says what to pass.
    public static func load(_ specifier: String?, forModel modelFolder: String, vocabularySize: Int) throws -> any Tokenizer {
        if let specifier { return try load(specifier) }
        let file = (modelFolder as NSString).appendingPathComponent("tokenizer.json")
        guard FileManager.default.fileExists(atPath: file) else {
            throw TokenizerFileError(file: file, .io, "no such file: the model folder holds no tokenizer; pass --tokenizer "
                + (vocabularySize == ByteTokenizer().vocabularySize
                   ? "bytes (this model's vocabulary is \(vocabularySize): a byte-level model)" : "with the tokenizer.json it was trained with"))
        }
        return try load(modelFolder)
    }
}
