import Foundation
import SubspaceModel

/// One supervised fine-tuning example: the model reads `prompt` and learns to continue it with `response`.
public struct SFTExample: Sendable, Equatable, Codable {
    public var prompt: String
    public var response: String
    /// The conversation, for examples read in the `messages` shape: with a chat format other than `plain`
    /// it is rendered by the model's template and every assistant turn is trained (see `SFTDataset`).
    public var messages: [ChatMessage]?

    public init(prompt: String, response: String, messages: [ChatMessage]? = nil) {
        self.prompt = prompt
        self.response = response
        self.messages = messages
    }
}

/// Reads SFT examples from JSONL: one JSON object per line; blank lines are skipped. Accepted shapes, tried
/// in this order:
///
/// - `{"messages": [{"role": …, "content": …}, …]}` (chat; with a chat format other than `plain` the whole
///   conversation is kept and rendered by the template, see `SFTDataset`): the response is the content of the last message
///   whose role is `assistant`; the prompt renders every message before it, one per line, as
///   `"<role>: <content>\n"`, and then `"assistant: "`. So `[user "Hi", assistant "Hello"]` becomes prompt
///   `"user: Hi\nassistant: "` and response `"Hello"`. Messages after the last assistant message are ignored.
/// - `{"prompt": …, "response": …}` (also `"completion"` for `"response"`): taken as they are, so any
///   separator ("\nA: ") belongs at the end of the prompt.
/// - `{"instruction": …, "input": …, "output": …}` (Alpaca): prompt `instruction + "\n" + input` when `input`
///   is present and not empty, else `instruction`; response `output`.
///
/// Other keys are ignored. A line that is not JSON, not an object, or in none of these shapes is a
/// `DataError` naming the file and the line.
public enum SFTJSONL {
    public static func read(file: String) throws -> [SFTExample] {
        guard let data = FileManager.default.contents(atPath: file) else {
            throw DataError(file: file, .io, "missing or unreadable")
        }
        guard let text = String(validating: data, as: UTF8.self) else {
            throw DataError(file: file, .input, "is not valid UTF-8 text")
        }
        return try parse(text, file: file)
    }

    /// Parses JSONL text; `file` only names the source in errors.
    public static func parse(_ text: String, file: String) throws -> [SFTExample] {
        var examples: [SFTExample] = []
        // Split on bytes: as Characters, "\r\n" is one grapheme and would not split on "\n".
        for (number, rawLine) in text.utf8.split(separator: 0x0A, omittingEmptySubsequences: false).enumerated() {
            let line = rawLine.last == 0x0D ? rawLine.dropLast() : rawLine[...]
            guard !line.allSatisfy({ $0 == 0x20 || $0 == 0x09 }) else { continue }
            func fail(_ reason: String) -> DataError { DataError(file: file, line: number + 1, .jsonl, reason) }
            let object: Any
            do {
                object = try JSONSerialization.jsonObject(with: Data(line), options: [.fragmentsAllowed])
            } catch {
                throw fail("not valid JSON")
            }
            guard let fields = object as? [String: Any] else { throw fail("not a JSON object") }
            examples.append(try example(fields, fail: fail))
        }
        return examples
    }

    static func example(_ fields: [String: Any], fail: (String) -> DataError) throws -> SFTExample {
        func string(_ key: String) throws -> String? {
            guard let value = fields[key], !(value is NSNull) else { return nil }
            guard let s = value as? String else { throw fail("'\(key)' is not a string") }
            return s
        }
        if let messages = fields["messages"] {
            guard let list = messages as? [Any] else { throw fail("'messages' is not a list") }
            var turns: [(role: String, content: String)] = []
            for (i, item) in list.enumerated() {
                guard let message = item as? [String: Any] else { throw fail("messages[\(i)] is not an object") }
                guard let role = message["role"] as? String else { throw fail("messages[\(i)] has no string 'role'") }
                guard let content = message["content"] as? String else {
                    throw fail("messages[\(i)] has no string 'content'")
                }
                turns.append((role, content))
            }
            guard let last = turns.lastIndex(where: { $0.role == "assistant" }) else {
                throw fail("'messages' has no message with role 'assistant'")
            }
            let prompt = turns[..<last].map { "\($0.role): \($0.content)\n" }.joined() + "assistant: "
            return SFTExample(prompt: prompt, response: turns[last].content,
                              messages: turns.map { ChatMessage(role: $0.role, content: $0.content) })
        }
        if let prompt = try string("prompt") {
            guard let response = try string("response") ?? string("completion") else {
                throw fail("has 'prompt' but no string 'response' (or 'completion')")
            }
            return SFTExample(prompt: prompt, response: response)
        }
        if let instruction = try string("instruction") {
            guard let output = try string("output") else { throw fail("has 'instruction' but no string 'output'") }
            let input = try string("input") ?? ""
            return SFTExample(prompt: input.isEmpty ? instruction : instruction + "\n" + input, response: output)
        }
        let keys = fields.keys.sorted().map { "'\($0)'" }.joined(separator: ", ")
        throw fail("expected 'prompt' and 'response', 'instruction' and 'output', or 'messages'; found \(keys.isEmpty ? "no keys" : keys)")
    }

    /// One example per line in the `{"prompt", "response"}` shape, keys sorted.
    public static func encode(_ examples: [SFTExample]) throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        var out: [UInt8] = []
        for example in examples {
            out += try encoder.encode(example)
            out.append(0x0A)
        }
        return out
    }
}
