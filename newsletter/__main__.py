from newsletter.cli import main

# Guarded: `worker --processes N` starts spawn-context children, which import this module again.
if __name__ == "__main__":
    main()
