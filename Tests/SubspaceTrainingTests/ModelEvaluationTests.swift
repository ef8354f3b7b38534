import Foundation
import Testing
import SubspaceDistributed
import SubspaceModel
@testable import SubspaceTraining

@Suite struct ModelEvaluationTests {
    static let fixtures: String = {
        if let env = ProcessInfo.processInfo.environment["SUBSPACE_FIXTURES"] { return env }
        return URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("shared/fixtures").path
    }()

    /// The loss over a text equals the mean of the forward pass's losses over its windows, and two ranks
    /// give the same result as one.
    @Test func textLossMatchesForwardPassesAndRanksAgree() throws {
        let text = String(repeating: "To be, or not to be, that is the question. ", count: 8)
        let file = NSTemporaryDirectory() + "eval-\(getpid()).txt"
        try text.write(toFile: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: file) }
        var options = ModelEvaluation.Options(model: Self.fixtures + "/llama-tiny", data: file)
        options.tokenizer = "bytes"
        options.sequence = 32
        options.batch = 3
        let fixed = options
        let one = try LocalCluster.run(size: 1) { comm in try ModelEvaluation.run(fixed, communicator: comm) }[0]
        // Reference: every window through the model on its own.
        let model = try HFCheckpoint.load(folder: Self.fixtures + "/llama-tiny")
        let ids = Array(text.utf8).map(Int32.init)
        var total = 0.0
        let windows = (ids.count - 1) / 32
        for w in 0..<windows {
            let loss = model.forward(ids: Array(ids[w * 32..<(w * 32 + 32)]), targets: Array(ids[(w * 32 + 1)...(w * 32 + 32)]), B: 1, T: 32)!
            total += Double(loss)
        }
        #expect(one.samples == windows && one.tokens == windows * 32)
        #expect(abs(one.loss - total / Double(windows)) < 1e-5)
        let two = try LocalCluster.run(size: 2) { comm in try ModelEvaluation.run(fixed, communicator: comm) }
        #expect(abs(two[0].loss - one.loss) < 1e-5 && two[0] == two[1] && two[0].ranks == 2)
    }
}
