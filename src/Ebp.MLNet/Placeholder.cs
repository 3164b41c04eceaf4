namespace Ebp.MLNet; internal static class Placeholder {}
