import Foundation

/// The chat formats Subspace renders, as the families' Jinja templates do (a Jinja interpreter is not
/// needed: the template is recognised, then rendered by code).
public enum ChatFormat: Sendable, Equatable {
    /// Today's format for byte-level toy models: `"user: …\nassistant: "` (see `SFTJSONL`).
    case plain
    /// `<|im_start|>role\ncontent<|im_end|>\n` (Qwen2); with the system prompt the template adds when the
    /// conversation has none.
    case chatml(defaultSystem: String?)
    /// BOS, then `<|start_header_id|>role<|end_header_id|>\n\n` + trimmed content + `<|eot_id|>` (Llama-3).
    case llama3
    /// `<s>[INST] <<SYS>>\n…\n<</SYS>>\n\nuser [/INST] assistant </s>` (Llama-2-chat).
    case llama2

    public var name: String {
        switch self {
        case .plain: "plain"
        case .chatml: "chatml"
        case .llama3: "llama3"
        case .llama2: "llama2"
        }
    }
}

/// `data.chat_format` and `--chat-format`: which format, or `auto` (the tokenizer's template).
public enum ChatFormatChoice: String, Sendable, Equatable, CaseIterable {
    case auto, chatml, llama3, llama2, plain
}

/// A chat format with the BOS/EOS strings it uses: renders conversations to text and token ids.
public struct ChatTemplate: Sendable, Equatable {
    public var format: ChatFormat
    public var bosToken: String
    public var eosToken: String

    public init(format: ChatFormat, bosToken: String? = nil, eosToken: String? = nil) {
        self.format = format
        switch format {
        case .llama3:
            self.bosToken = bosToken ?? "<|begin_of_text|>"
            self.eosToken = eosToken ?? "<|eot_id|>"
        case .llama2:
            self.bosToken = bosToken ?? "<s>"
            self.eosToken = eosToken ?? "</s>"
        case .chatml:
            self.bosToken = bosToken ?? ""
            self.eosToken = eosToken ?? "<|im_end|>"
        case .plain:
            self.bosToken = bosToken ?? ""
            self.eosToken = eosToken ?? ""
        }
    }

    /// Recognises a Jinja chat template as one of the supported formats; `file` names it in errors.
    public static func recognise(_ template: String, file: String) throws -> ChatFormat {
        if template.contains("<|im_start|>") && template.contains("<|im_end|>") {
            return .chatml(defaultSystem: defaultSystemPrompt(template))
        }
        if template.contains("<|start_header_id|>") && template.contains("<|eot_id|>") {
            if template.contains("Cutting Knowledge Date") || template.contains("tools") {
                throw ChatTemplateError(file: file, "a Llama-3.1-style template (tools, dated system header) is not supported; "
                                        + "set data.chat_format (or --chat-format) to llama3 for the Llama-3 headers without them")
            }
            return .llama3
        }
        if template.contains("[INST]") && template.contains("[/INST]") && template.contains("<<SYS>>") {
            return .llama2
        }
        throw ChatTemplateError(file: file, "the chat template is not one Subspace recognises (ChatML, Llama-3, Llama-2); "
                                + "set data.chat_format (or --chat-format) to chatml, llama3, llama2 or plain")
    }

    /// The literal system prompt a ChatML template writes when the conversation has none:
    /// `'<|im_start|>system\nYou are …<|im_end|>\n'` in the template's text.
    static func defaultSystemPrompt(_ template: String) -> String? {
        let marker = "<|im_start|>system\\n"
        var search = template.startIndex..<template.endIndex
        while let start = template.range(of: marker, range: search) {
            search = start.upperBound..<template.endIndex
            guard let end = template.range(of: "<|im_end|>", range: start.upperBound..<template.endIndex) else { break }
            let literal = String(template[start.upperBound..<end.lowerBound])
            // A literal inside one quoted Jinja string: no expression, no closing quote.
            if literal.contains("'") || literal.contains("\"") || literal.contains("{") || literal.contains("+") { continue }
            return literal.replacingOccurrences(of: "\\n", with: "\n")
        }
        return nil
    }

    /// Resolves `choice` against the tokenizer's configuration (its template, BOS and EOS). `auto` uses
    /// the template when there is one, else `plain`.
    public static func resolve(_ choice: ChatFormatChoice, config: TokenizerConfig?) throws -> ChatTemplate {
        let format: ChatFormat
        switch choice {
        case .auto:
            format = try config?.chatTemplate.map {
                try recognise($0, file: config?.chatTemplateFile ?? "tokenizer_config.json")
            } ?? .plain
        case .plain: format = .plain
        case .chatml:
            if case .chatml(let system)? = try? config?.chatTemplate.map({ try recognise($0, file: "") }) {
                format = .chatml(defaultSystem: system)
            } else {
                format = .chatml(defaultSystem: nil)
            }
        case .llama3: format = .llama3
        case .llama2: format = .llama2
        }
        return ChatTemplate(format: format, bosToken: config?.bosToken, eosToken: config?.eosToken)
    }

    /// A stretch of the rendered conversation; `trained` marks an assistant reply (and the token that
    /// ends it), the part SFT learns.
    public struct Segment: Sendable, Equatable {
        public var text: String
        public var trained: Bool
    }

    /// The conversation as the family's template renders it, cut into segments.
    public func render(_ messages: [ChatMessage], addGenerationPrompt: Bool, source: String = "<messages>") throws -> [Segment] {
        var out: [Segment] = []
        func add(_ text: String, trained: Bool = false) {
            if text.isEmpty { return }
            if let last = out.last, last.trained == trained { out[out.count - 1].text += text } else { out.append(Segment(text: text, trained: trained)) }
        }
        switch format {
        case .plain:
            for m in messages {
                if m.role == "assistant" {
                    add("assistant: ")
                    add(m.content, trained: true)
                    add("\n")
                } else {
                    add("\(m.role): \(m.content)\n")
                }
            }
            if addGenerationPrompt { add("assistant: ") }
        case .chatml(let defaultSystem):
            if messages.first?.role != "system", let defaultSystem {
                add("<|im_start|>system\n" + defaultSystem + "<|im_end|>\n")
            }
            for m in messages {
                if m.role == "assistant" {
                    add("<|im_start|>assistant\n")
                    add(m.content + "<|im_end|>", trained: true)
                    add("\n")
                } else {
                    add("<|im_start|>" + m.role + "\n" + m.content + "<|im_end|>\n")
                }
            }
            if addGenerationPrompt { add("<|im_start|>assistant\n") }
        case .llama3:
            add(bosToken)
            for m in messages {
                let content = Self.trimmed(m.content)
                add("<|start_header_id|>" + m.role + "<|end_header_id|>\n\n")
                if m.role == "assistant" { add(content + "<|eot_id|>", trained: true) } else { add(content + "<|eot_id|>") }
            }
            if addGenerationPrompt { add("<|start_header_id|>assistant<|end_header_id|>\n\n") }
        case .llama2:
            var loop = messages[...]
            var system: String?
            if messages.first?.role == "system" {
                system = messages[0].content
                loop = messages.dropFirst()
            }
            for (i, m) in loop.enumerated() {
                guard (m.role == "user") == (i % 2 == 0), m.role == "user" || m.role == "assistant" else {
                    throw ChatTemplateError(file: source, "Llama-2 conversations must alternate user/assistant/user/… after an optional system message; message \(i + (system == nil ? 0 : 1)) is '\(m.role)'")
                }
                var content = m.content
                if i == 0, let system { content = "<<SYS>>\n" + system + "\n<</SYS>>\n\n" + content }
                if m.role == "user" {
                    add(bosToken + "[INST] " + Self.trimmed(content) + " [/INST]")
                } else {
                    add(" " + Self.trimmed(content) + " " + eosToken, trained: true)
                }
            }
        }
        return out
    }

    /// Python's `str.strip()` / Jinja's `trim`: whitespace off both ends.
    public static func trimmed(_ s: String) -> String {
        let scalars = Array(s.unicodeScalars)
        var a = 0, b = scalars.count
        while a < b && scalars[a].properties.isWhitespace { a += 1 }
        while b > a && scalars[b - 1].properties.isWhitespace { b -= 1 }
        var view = String.UnicodeScalarView()
        view.append(contentsOf: scalars[a..<b])
        return String(view)
    }

    /// The rendered conversation as text.
    public func text(_ messages: [ChatMessage], addGenerationPrompt: Bool) throws -> String {
        try render(messages, addGenerationPrompt: addGenerationPrompt).map(\.text).joined()
    }

    /// Token ids as `apply_chat_template(tokenize=True)` gives them (the rendered text encoded without the
    /// post-processor's tokens), and the id ranges of the trained segments.
    ///
    /// The ranges come from encoding the text up to each segment boundary: a boundary falls after the ids
    /// the prefix and the whole share. Where a BPE token spans a boundary it goes to the later segment, so
    /// a reply starting mid-token still trains on that token.
    public func encode(_ messages: [ChatMessage], tokenizer: any Tokenizer, addGenerationPrompt: Bool,
                       source: String = "<messages>") throws -> (ids: [Int], trained: [Range<Int>]) {
        let segments = try render(messages, addGenerationPrompt: addGenerationPrompt, source: source)
        let full = tokenizer.encode(segments.map(\.text).joined())
        var trained: [Range<Int>] = []
        var prefix = ""
        func boundary() -> Int {
            let ids = tokenizer.encode(prefix)
            var n = 0
            while n < ids.count && n < full.count && ids[n] == full[n] { n += 1 }
            return n
        }
        for segment in segments {
            if segment.trained {
                let start = boundary()
                prefix += segment.text
                let end = boundary()
                if end > start { trained.append(start..<end) }
            } else {
                prefix += segment.text
            }
        }
        return (full, trained)
    }

    /// Ids that end an assistant reply in this format (generation stops there).
    public func stopTokens(_ tokenizer: any Tokenizer) -> Set<Int> {
        let names: [String]
        switch format {
        case .plain: names = []
        case .chatml: names = ["<|im_end|>", "<|endoftext|>", eosToken]
        case .llama3: names = ["<|eot_id|>", "<|end_of_text|>", eosToken]
        case .llama2: names = [eosToken]
        }
        return Set(names.compactMap { tokenizer.specialTokens[$0] })
    }

    /// Checks that the tokenizer has the special tokens this format writes, so they are not spelt out as
    /// text; `source` names the tokenizer.
    public func check(_ tokenizer: any Tokenizer, source: String) throws {
        let needed: [String]
        switch format {
        case .plain: needed = []
        case .chatml: needed = ["<|im_start|>", "<|im_end|>"]
        case .llama3: needed = ["<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>", bosToken]
        case .llama2: needed = [bosToken, eosToken]
        }
        let missing = needed.filter { tokenizer.specialTokens[$0] == nil }
        guard missing.isEmpty else {
            throw ChatTemplateError(file: source, "chat format \(format.name) needs the special token(s) \(missing.joined(separator: ", ")), which the tokenizer does not have; set data.chat_format to another format or plain")
        }
    }
}
