import ArgumentParser
import Foundation
import SubspaceCore
import SubspaceModel

/// Text on stdin → token ids as one JSON array on stdout (with the post-processor's special tokens, as HF's
/// `encode` adds them by default); with `--decode`, such an array → the text; with `--chat`, a JSON list of
/// messages → the ids of the conversation in the tokenizer's chat template.
/// For checking a tokenizer against other implementations and for scripts that prepare data.
extension ChatFormatChoice: ExpressibleByArgument {}

struct Tokenize: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Encode stdin as a JSON array of token ids; with --decode, turn such an array back into text.")

    @Option(help: ArgumentHelp(
        "A BPE tokenizer.json (GPT-2, Qwen2, Llama-3, Llama-2 shapes) or a model folder holding one, or 'bytes' for one id per UTF-8 byte.",
        valueName: "file"))
    var tokenizer: String

    @Flag(help: "Read a JSON array of ids on stdin and write the text they stand for (no newline added).")
    var decode = false

    @Flag(help: "Read a JSON list of {\"role\", \"content\"} messages on stdin and write the ids of the conversation as the tokenizer's chat template renders it (transformers' apply_chat_template(tokenize=True)).")
    var chat = false

    @Flag(help: "With --chat: end with the assistant header a reply would follow.")
    var generationPrompt = false

    @Option(help: "With --chat: auto (the template in tokenizer_config.json or chat_template.jinja beside the tokenizer), chatml, llama3, llama2 or plain.")
    var chatFormat: ChatFormatChoice = .auto

    @Flag(help: "Leave out the special tokens the tokenizer's post-processor adds (Llama's BOS); HF's add_special_tokens=False.")
    var noSpecialTokens = false

    @Option(help: "Threads for encoding (default: the cores this process may use).")
    var threads: Int?

    func validate() throws {
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1") }
        if chat && decode { throw ValidationError("--chat and --decode exclude each other") }
        if generationPrompt && !chat { throw ValidationError("--generation-prompt needs --chat") }
    }

    func run() throws {
        let model = try Tokenizers.load(tokenizer)
        let input = FileHandle.standardInput.readDataToEndOfFile()
        if chat {
            let messages = try ChatMessage.list(json: input, source: "stdin")
            let template = try ChatTemplate.resolve(chatFormat, config: try TokenizerConfig.near(tokenizer))
            try template.check(model, source: tokenizer)
            let ids = try template.encode(messages, tokenizer: model, addGenerationPrompt: generationPrompt, source: "stdin").ids
            FileHandle.standardOutput.write(TokenIDList.json(ids))
        } else if decode {
            let text = try model.decode(try TokenIDList.parse(input))
            FileHandle.standardOutput.write(Data(text.utf8))
        } else {
            guard let text = String(validating: input, as: UTF8.self) else {
                throw TokenizeInputError("stdin is not valid UTF-8 text")
            }
            var ids = model.encode(text, threads: threads ?? ThreadPolicy.decide().allowedCores)
            if !noSpecialTokens, let bpe = model as? BPETokenizer {
                ids = bpe.postProcessor.prefix + ids + bpe.postProcessor.suffix
            }
            FileHandle.standardOutput.write(TokenIDList.json(ids))
        }
    }
}

/// Bad input on stdin.
struct TokenizeInputError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// A JSON array of integers, read and written directly: millions of ids go through here, and a
/// hand-rolled scanner also says exactly where the input stops being a list of ids.
enum TokenIDList {
    static func json(_ ids: [Int]) -> Data {
        var out = [UInt8]()
        out.reserveCapacity(ids.count * 5 + 2)
        out.append(UInt8(ascii: "["))
        for (i, id) in ids.enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            out.append(contentsOf: String(id).utf8)
        }
        out.append(contentsOf: "]\n".utf8)
        return Data(out)
    }

    static func parse(_ data: Data) throws -> [Int] {
        let bytes = [UInt8](data)
        var i = 0
        func skipSpace() {
            while i < bytes.count, bytes[i] == 0x20 || bytes[i] == 0x09 || bytes[i] == 0x0A || bytes[i] == 0x0D { i += 1 }
        }
        func fail(_ expected: String) -> TokenizeInputError {
            let found = i < bytes.count ? "'\(String(decoding: bytes[i..<min(bytes.count, i + 12)], as: UTF8.self))'" : "the end"
            return TokenizeInputError("stdin is not a JSON array of integer ids: expected \(expected) at byte \(i), found \(found)")
        }
        skipSpace()
        guard i < bytes.count, bytes[i] == UInt8(ascii: "[") else { throw fail("'['") }
        i += 1
        skipSpace()
        var ids: [Int] = []
        if i < bytes.count, bytes[i] == UInt8(ascii: "]") {
            i += 1
        } else {
            while true {
                skipSpace()
                let start = i
                let negative = i < bytes.count && bytes[i] == UInt8(ascii: "-")
                if negative { i += 1 }
                let digitsStart = i
                var value = 0, overflow = false
                while i < bytes.count, (0x30...0x39).contains(bytes[i]) {
                    let (times10, o1) = value.multipliedReportingOverflow(by: 10)
                    let (sum, o2) = times10.addingReportingOverflow(Int(bytes[i] - 0x30))
                    (value, overflow) = (sum, overflow || o1 || o2)
                    i += 1
                }
                guard i > digitsStart, !overflow else {
                    i = start
                    throw fail("an integer id")
                }
                ids.append(negative ? -value : value)
                skipSpace()
                guard i < bytes.count else { throw fail("',' or ']'") }
                if bytes[i] == UInt8(ascii: "]") { i += 1; break }
                guard bytes[i] == UInt8(ascii: ",") else { throw fail("',' or ']'") }
                i += 1
            }
        }
        skipSpace()
        guard i == bytes.count else { throw fail("nothing after the array") }
        return ids
    }
}
