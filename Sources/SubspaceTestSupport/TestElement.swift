import SubspaceDistributed

/// The collective element types with the arithmetic the checks need to compute expected values by hand:
/// conversion from a small integer and the same (wrapping, for integers) sum the collectives use.
protocol TestElement: CollectiveElement {
    init(testValue: Int)
    static func testSum(_ a: Self, _ b: Self) -> Self
}

extension Float: TestElement {
    init(testValue: Int) { self.init(testValue) }
    static func testSum(_ a: Float, _ b: Float) -> Float { a + b }
}

extension Double: TestElement {
    init(testValue: Int) { self.init(testValue) }
    static func testSum(_ a: Double, _ b: Double) -> Double { a + b }
}

extension Int32: TestElement {
    init(testValue: Int) { self.init(truncatingIfNeeded: testValue) }
    static func testSum(_ a: Int32, _ b: Int32) -> Int32 { a &+ b }
}

extension Int64: TestElement {
    init(testValue: Int) { self.init(testValue) }
    static func testSum(_ a: Int64, _ b: Int64) -> Int64 { a &+ b }
}

extension UInt8: TestElement {
    init(testValue: Int) { self.init(truncatingIfNeeded: testValue) }
    static func testSum(_ a: UInt8, _ b: UInt8) -> UInt8 { a &+ b }
}

/// Compares element by element and describes the first few differences (nil when equal).
func compare<T: Equatable>(_ actual: [T], _ expected: [T], _ what: String) -> String? {
    guard actual.count == expected.count else {
        return "\(what): got \(actual.count) elements, expected \(expected.count)"
    }
    let wrong = actual.indices.lazy.filter { actual[$0] != expected[$0] }
    guard let first = wrong.first else { return nil }
    let total = wrong.count
    return "\(what): \(total) wrong elements, first at [\(first)]: got \(actual[first]), expected \(expected[first])"
}
