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
