/// A failure to decode: the ids are not all in the vocabulary.
public enum TokenizerError: Error, Equatable, Sendable, CustomStringConvertible {
    /// `id` names no token; valid ids lie in `0..<vocabularySize` (a BPE vocabulary may also have gaps).
    case unknownID(Int, vocabularySize: Int)

    public var description: String {
        switch self {
        case .unknownID(let id, let size): "unknown token id \(id) (vocabulary size \(size))"
        }
    }
}

/// Why a tokenizer file (or a text file to encode) could not be used. Always names the file.
public struct TokenizerFileError: Error, CustomStringConvertible, Sendable {
    public enum Kind: Sendable, Equatable {
        /// The file is missing, a folder, or unreadable.
        case io
        /// The file is not JSON, or not a JSON object.
        case json
        /// A required field is missing or has the wrong type.
        case field
        /// The file asks for something this implementation does not do (another model type, a normalizer,
        /// BPE dropout, …).
        case unsupported
        /// The vocabulary is inconsistent (negative ids, an unknown `unk_token`).
        case vocabulary
        /// A merge is malformed or refers to a token that is not in the vocabulary.
        case merges
        /// An entry of `added_tokens` is malformed.
        case addedTokens
        /// A text file to encode is not valid UTF-8.
        case text
    }

    public let file: String
    public let kind: Kind
    public let reason: String

    public init(file: String, _ kind: Kind, _ reason: String) {
        self.file = file
        self.kind = kind
        self.reason = reason
    }

    public var description: String { "\(file): \(reason)" }
}
