"""The Lumo agent: a LangGraph graph over the tools."""
