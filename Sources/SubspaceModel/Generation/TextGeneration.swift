import Foundation

/// Text in, text out: a prompt (or a conversation in the tokenizer's chat template) through `Generator`,
/// the new tokens decoded as they come, stopping at end tokens or stop strings. What `subspace generate`
/// runs; the caller decides where the text goes.
public struct TextGeneration {
    public let model: Transformer
    public let tokenizer: any Tokenizer
    public var sampling: SamplingOptions
    /// Generation stops before the first of these strings (which is not written).
    public var stopStrings: [String]

    public init(model: Transformer, tokenizer: any Tokenizer, sampling: SamplingOptions, stopStrings: [String] = []) {
        self.model = model
        self.tokenizer = tokenizer
        self.sampling = sampling
        self.stopStrings = stopStrings.filter { !$0.isEmpty }
    }

    public struct Result: Sendable {
        /// The generated text (without the stop token or stop string).
        public var text: String
        /// The generated ids (a final stop token included).
        public var ids: [Int32]
        /// Why it ended: "stop token", "stop string", "max new tokens" or "context".
        public var reason: String
    }

    /// The ids a text prompt starts from: the text with the tokenizer's special tokens (Llama's BOS), as
    /// HF's `generate` sees `tokenizer(prompt)`.
    public func promptIDs(text: String) -> [Int32] {
        tokenizer.encode(text, addingSpecialTokens: true).map { Int32($0) }
    }

    /// The ids a conversation starts from: rendered with `template` and its generation prompt.
    public func promptIDs(messages: [ChatMessage], template: ChatTemplate) throws -> [Int32] {
        try template.encode(messages, tokenizer: tokenizer, addGenerationPrompt: true).ids.map { Int32($0) }
    }

    /// Generates after `prompt`; `onText` gets each new stretch of text as soon as it is whole UTF-8 and
    /// cannot be the start of a stop string.
    public func run(prompt: [Int32], onText: (String) -> Void = { _ in }) throws -> Result {
        precondition(!prompt.isEmpty, "generation needs a non-empty prompt")
        guard prompt.count < model.config.maxPositions else {
            throw GenerationError("the prompt has \(prompt.count) tokens; the model takes at most \(model.config.maxPositions) positions")
        }
        if let bad = prompt.first(where: { $0 < 0 || Int($0) >= model.config.vocabularySize }) {
            throw GenerationError("prompt id \(bad) is outside the model's vocabulary of \(model.config.vocabularySize)")
        }
        let generator = Generator(model: model)
        var kept: [Int] = []
        var emitted = 0  // bytes of the text already passed to onText
        var finalText: String?
        var stoppedByString = false
        let ids = generator.generate(prompt: prompt, options: sampling) { id in
            if sampling.stopTokens.contains(id) { return false }
            kept.append(Int(id))
            let bytes = (try? tokenizer.decodeBytes(kept)) ?? []
            let text = Self.completeUTF8Prefix(bytes)
            if let cut = stopStrings.compactMap({ text.range(of: $0)?.lowerBound }).min() {
                let before = String(text[..<cut])
                let new = Array(before.utf8).dropFirst(emitted)
                if !new.isEmpty { onText(String(decoding: new, as: UTF8.self)) }
                finalText = before
                stoppedByString = true
                return false
            }
            // Hold back a tail that might begin a stop string.
            var safe = text.utf8.count
            for stop in stopStrings {
                for length in stride(from: min(stop.utf8.count - 1, text.utf8.count), through: 1, by: -1)
                where text.utf8.suffix(length).elementsEqual(stop.utf8.prefix(length)) {
                    safe = min(safe, text.utf8.count - length)
                    break
                }
            }
            if safe > emitted {
                onText(String(decoding: Array(text.utf8)[emitted..<safe], as: UTF8.self))
                emitted = safe
            }
            return true
        }
        var text = finalText ?? ((try? tokenizer.decode(kept)) ?? "")
        if finalText == nil {
            let all = Array(text.utf8)
            if all.count > emitted { onText(String(decoding: all[emitted...], as: UTF8.self)) }
        }
        if stoppedByString, let f = finalText { text = f }
        let reason = stoppedByString ? "stop string"
            : ids.last.map { sampling.stopTokens.contains($0) } == true ? "stop token"
            : ids.count >= sampling.maxNewTokens ? "max new tokens" : "context"
        return Result(text: text, ids: ids, reason: reason)
    }

    /// The longest prefix of `bytes` that ends on a whole UTF-8 sequence, as text.
    static func completeUTF8Prefix(_ bytes: [UInt8]) -> String {
        var end = bytes.count
        // Back off over an incomplete final sequence (at most 3 bytes).
        var i = bytes.count - 1, continuation = 0
        while i >= 0 && continuation < 4 && bytes[i] & 0xC0 == 0x80 { continuation += 1; i -= 1 }
        if i >= 0 {
            let lead = bytes[i]
            let length = lead < 0x80 ? 1 : lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1
            if continuation + 1 < length { end = i }
        }
        return String(decoding: bytes[..<end], as: UTF8.self)
    }
}

/// A generation request that cannot be served.
public struct GenerationError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}
