import Foundation
import Testing
@testable import SubspaceModel

/// Chat renderings against transformers' `apply_chat_template` (references by make_references.py).
@Suite struct ChatTemplateTests {
    @Test(arguments: ["qwen2", "llama3", "llama2"])
    func rendersAsTransformersDoes(family: String) throws {
        let folder = TokenizerResources.path(family)
        let tokenizer = try Tokenizers.load(folder)
        let config = try #require(try TokenizerConfig.near(folder))
        let template = try ChatTemplate.resolve(.auto, config: config)
        try template.check(tokenizer, source: folder)
        switch (family, template.format) {
        case ("qwen2", .chatml(let system)): #expect(system == "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.")
        case ("llama3", .llama3), ("llama2", .llama2): break
        default: Issue.record("\(family) recognised as \(template.format)")
        }
        let reference = try TokenizerResources.json(TokenizerResources.path(family, "references.json"))
        for chat in reference["chats"] as! [[String: Any]] {
            let messages = (chat["messages"] as! [[String: String]]).map { ChatMessage(role: $0["role"]!, content: $0["content"]!) }
            let generationPrompt = chat["add_generation_prompt"] as! Bool
            let label = "\(family) \(chat["name"]!) generation prompt \(generationPrompt)"
            #expect(try template.text(messages, addGenerationPrompt: generationPrompt) == chat["text"] as! String, "\(label)")
            let (ids, trained) = try template.encode(messages, tokenizer: tokenizer, addGenerationPrompt: generationPrompt)
            #expect(ids == chat["ids"] as! [Int], "\(label)")
            // Every assistant reply is trained, and the trained ids spell the replies with their end token.
            let replies = messages.filter { $0.role == "assistant" }
            #expect(trained.count == replies.count, "\(label)")
            for (range, reply) in zip(trained, replies) {
                let text = try tokenizer.decode(Array(ids[range]))
                #expect(text.contains(ChatTemplate.trimmed(reply.content)), "\(label): trained \(text.debugDescription)")
                #expect(text.hasSuffix(template.eosToken), "\(label): trained \(text.debugDescription)")
            }
        }
    }

    @Test func templatesAreReadFromJinjaFilesAndUnknownOnesAreRefused() throws {
        let folder = NSTemporaryDirectory() + "chat-template-\(getpid())"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try "{{ bos_token }}{% for m in messages %}<|start_header_id|>{{ m.role }}<|end_header_id|>\n\n{{ m.content | trim }}<|eot_id|>{% endfor %}"
            .write(toFile: folder + "/chat_template.jinja", atomically: true, encoding: .utf8)
        let config = try #require(try TokenizerConfig.load(folder: folder))
        #expect(try ChatTemplate.resolve(.auto, config: config).format == .llama3)
        try "{% for m in messages %}### {{ m.role }}: {{ m.content }}{% endfor %}"
            .write(toFile: folder + "/chat_template.jinja", atomically: true, encoding: .utf8)
        let unknown = try #require(try TokenizerConfig.load(folder: folder))
        #expect(throws: ChatTemplateError.self) { try ChatTemplate.resolve(.auto, config: unknown) }
        do {
            _ = try ChatTemplate.resolve(.auto, config: unknown)
        } catch let error as ChatTemplateError {
            #expect(error.file.hasSuffix("chat_template.jinja"))
            #expect(error.reason.contains("data.chat_format"))
        }
        // An explicit format needs no recognisable template.
        #expect(try ChatTemplate.resolve(.llama2, config: unknown).format == .llama2)
        #expect(try ChatTemplate.resolve(.auto, config: nil).format == .plain)
    }

    @Test func llama2RefusesConversationsThatDoNotAlternate() throws {
        let template = ChatTemplate(format: .llama2)
        let messages = [ChatMessage(role: "user", content: "a"), ChatMessage(role: "user", content: "b")]
        #expect(throws: ChatTemplateError.self) { try template.text(messages, addGenerationPrompt: false) }
    }
}
