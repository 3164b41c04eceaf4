// The tests share one generated data set and a reference run; they run one class at a time (2 cores, torch threads).
[assembly: Microsoft.VisualStudio.TestTools.UnitTesting.DoNotParallelize]

namespace Ebp.Audit.Tests
{
    [TestClass]
    public sealed class AssemblyHooks
    {
        [AssemblyCleanup]
        public static void Cleanup() => TestSet.Delete();
    }
}
