"""ldrkit: diffusion models on text-like grammars, their hallucinations, and the Local Dependency Ratio.

The executable companion to "Towards Understanding Text Hallucination of Diffusion Models
via Local Generation Bias". One module per arrow of the data path:
grammars -> render -> diffusion/models -> train -> (sample) -> render.decode -> categorize, and ldr.
"""
__version__ = "0.1.0"
