import Foundation
import Testing
import SubspaceCore
@testable import SubspaceModel

/// `../shared/fixtures` beside the checkout, or `$SUBSPACE_FIXTURES`.
func modelFixtures() -> String {
    if let env = ProcessInfo.processInfo.environment["SUBSPACE_FIXTURES"] { return env }
    return URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("shared/fixtures").path
}

/// Passes when |a − e| ≤ atol + rtol·|e| everywhere; otherwise names the worst element.
func expectAllClose(_ actual: [Float], _ expected: [Float], rtol: Float, atol: Float, _ what: String,
                    sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(actual.count == expected.count, "\(what): \(actual.count) values vs \(expected.count)", sourceLocation: sourceLocation)
    var worst = -1
    var worstExcess: Float = 0
    for i in 0..<min(actual.count, expected.count) {
        let excess = abs(actual[i] - expected[i]) - (atol + rtol * abs(expected[i]))
        if excess > worstExcess || actual[i].isNaN { worst = i; worstExcess = actual[i].isNaN ? .infinity : excess }
    }
    if worst >= 0 {
        Issue.record("\(what): worst at \(worst): \(actual[worst]) vs \(expected[worst]) (|Δ| \(abs(actual[worst] - expected[worst])))",
                     sourceLocation: sourceLocation)
    }
}

/// The HF causal-LM batch of a reference file: ids [B, T] and targets shifted by one (last ignored).
func referenceBatch(_ file: SafetensorsFile) throws -> (ids: [Int32], targets: [Int32], B: Int, T: Int) {
    let (shape, values) = try file.integers("input_ids")
    let (B, T) = (shape[0], shape[1])
    let ids = values.map { Int32($0) }
    var targets = [Int32](repeating: -100, count: B * T)
    for b in 0..<B { for t in 0..<(T - 1) { targets[b * T + t] = ids[b * T + t + 1] } }
    return (ids, targets, B, T)
}

/// The whole model against a reference file of HF transformers (fixtures README tolerances): forward on `batch`,
/// logits and loss to 1e-5, then backward and every parameter's gradient (`grad.<HF name>`) to 1e-4.
func expectModelMatchesReference(_ model: Transformer, batch: (ids: [Int32], targets: [Int32], B: Int, T: Int),
                                 reference: SafetensorsFile, _ name: String,
                                 sourceLocation: SourceLocation = #_sourceLocation) throws {
    let loss = try #require(model.forward(ids: batch.ids, targets: batch.targets, B: batch.B, T: batch.T), sourceLocation: sourceLocation)
    let expectedLogits = try reference.tensor("logits")
    #expect(model.logits.shape == expectedLogits.shape, sourceLocation: sourceLocation)
    expectAllClose(model.logits.scalars, expectedLogits.scalars, rtol: 1e-5, atol: 1e-5, "\(name) logits", sourceLocation: sourceLocation)
    expectAllClose([loss], try reference.tensor("loss").scalars, rtol: 1e-5, atol: 0, "\(name) loss", sourceLocation: sourceLocation)

    model.zeroGradients()
    model.backward()
    let grads = HFCheckpoint.hfGradients(of: model)
    #expect(grads.count == reference.names.filter { $0.hasPrefix("grad.") }.count, sourceLocation: sourceLocation)
    for (hfName, g) in grads {
        let expected = try reference.tensor("grad." + hfName)
        #expect(g.shape == expected.shape, "\(hfName)", sourceLocation: sourceLocation)
        let scale = expected.scalars.map(abs).max() ?? 0
        expectAllClose(g.scalars, expected.scalars, rtol: 1e-4, atol: 1e-4 * scale, "\(name) grad \(hfName)", sourceLocation: sourceLocation)
    }
}
